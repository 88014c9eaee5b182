package migrate

import (
	"fmt"
	"strings"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/config"
)

// wellKnownCommunity returns the value of a well-known community (RFC 1997,
// 3765, 7999, 8326, 9494) by its usual name, in any case and with '-' or
// '_': MetalLB's documentation names NO_ADVERTISE.
func wellKnownCommunity(name string) (string, bool) {
	switch strings.ReplaceAll(strings.ToUpper(name), "-", "_") {
	case "GRACEFUL_SHUTDOWN":
		return "65535:0", true
	case "ACCEPT_OWN":
		return "65535:1", true
	case "LLGR_STALE":
		return "65535:6", true
	case "NO_LLGR":
		return "65535:7", true
	case "BLACKHOLE":
		return "65535:666", true
	case "NO_EXPORT":
		return "65535:65281", true
	case "NO_ADVERTISE":
		return "65535:65282", true
	case "NO_EXPORT_SUBCONFED", "LOCAL_AS":
		return "65535:65283", true
	case "NOPEER", "NO_PEER":
		return "65535:65284", true
	}
	return "", false
}

// heraldAliasName spells a MetalLB alias name as Herald accepts it:
// lowercase letters, digits, '-' and '.', starting and ending with a letter
// or digit. NO_ADVERTISE becomes no-advertise.
func heraldAliasName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-.")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-.")
	}
	return out
}

// communityValue parses a standard or large community and writes it as
// Herald does; ok is false for anything else (an alias name).
func communityValue(s string) (string, bool) {
	c, isAlias, err := config.ParseCommunity(strings.TrimSpace(s))
	if err != nil || isAlias {
		return "", false
	}
	return c.String(), true
}

func (c *converter) convertCommunity(it item[mlbCommunity]) {
	s := it.src
	out := v1beta1.Community{TypeMeta: typeMeta(config.KindCommunity), ObjectMeta: c.meta(s, it.obj.ObjectMeta)}
	type alias struct{ from, name, value string }
	var list []alias
	values := func(name string) (string, bool) {
		if v, ok := c.values[name]; ok {
			return v, true
		}
		for _, a := range list {
			if a.name == name {
				return a.value, true
			}
		}
		return "", false
	}
	for i, a := range it.obj.Spec.Communities {
		field := s.field(fmt.Sprintf("communities[%d]", i))
		value, ok := communityValue(a.Value)
		if !ok {
			c.rep.add(NoEquivalent, s.id, field+".value", "%q is not a community value such as 65000:100 or large:65000:1:2; alias %q dropped", a.Value, a.Name)
			continue
		}
		name := heraldAliasName(a.Name)
		if name == "" {
			c.rep.add(NoEquivalent, s.id, field+".name", "%q cannot be written as a Herald alias name; dropped", a.Name)
			continue
		}
		if prev, dup := values(name); dup {
			if prev != value {
				c.rep.add(NoEquivalent, s.id, field+".name", "alias %q (written %q) is already defined with value %s; dropped", a.Name, name, prev)
				continue
			}
			c.aliases[a.Name] = name
			c.rep.add(Adjusted, s.id, field+".name", "alias %q (written %q) is already defined with the same value; dropped", a.Name, name)
			continue
		}
		if name != a.Name {
			c.rep.add(Adjusted, s.id, field+".name", "alias %q renamed %q (Herald's alias names are lowercase DNS names); the BGPAdvertisements that use it follow", a.Name, name)
		}
		if value != a.Value {
			c.rep.add(Adjusted, s.id, field+".value", "%q written as %q", a.Value, value)
		}
		list = append(list, alias{a.Name, name, value})
	}
	if len(list) == 0 {
		c.rep.add(Ignored, s.id, "", "no alias to convert")
		return
	}
	if !c.claim(config.KindCommunity, it.obj.Name, s) {
		return
	}
	for _, a := range list {
		c.aliases[a.from] = a.name
		c.values[a.name] = a.value
		out.Spec.Communities = append(out.Spec.Communities, v1beta1.CommunityAlias{Name: a.name, Value: v1beta1.CommunityValue(a.value)})
	}
	c.out.Communities = append(c.out.Communities, out)
}

// communityRef converts one entry of a BGPAdvertisement's communities: a
// value, an alias that a Community defines, or a well-known name. ok is
// false when it has no equivalent, and the entry is dropped.
func (c *converter) communityRef(s src, field, ref string) (v1beta1.CommunityValue, bool) {
	if v, ok := communityValue(ref); ok {
		if v != ref {
			c.rep.add(Adjusted, s.id, field, "%q written as %q", ref, v)
		}
		return v1beta1.CommunityValue(v), true
	}
	if name, ok := c.aliases[ref]; ok {
		if name != ref {
			c.rep.add(Adjusted, s.id, field, "alias %q renamed %q, as in its Community", ref, name)
		}
		return v1beta1.CommunityValue(name), true
	}
	if v, ok := wellKnownCommunity(ref); ok {
		c.rep.add(Differs, s.id, field, "no Community defines %q: written as its well-known value %s (MetalLB has no built-in names and leaves this advertisement out until an alias is defined)", ref, v)
		return v1beta1.CommunityValue(v), true
	}
	c.rep.add(NoEquivalent, s.id, field, "%q is neither a community value nor an alias that a Community defines; dropped", ref)
	return "", false
}
