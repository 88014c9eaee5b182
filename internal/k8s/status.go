package k8s

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
)

// UpdateHeraldStatus writes obj's status through the status subresource of
// a Herald kind. obj must carry the resourceVersion it was read at, so a
// concurrent change is refused with a conflict rather than overwritten.
func UpdateHeraldStatus(ctx context.Context, c *Clients, resource, name string, obj runtime.Object) error {
	err := c.Herald.Put().Resource(resource).Name(name).SubResource("status").Body(obj).Do(ctx).Error()
	if err != nil {
		return fmt.Errorf("update status of %s %q: %w", resource, name, err)
	}
	return nil
}
