// The owner of what the webhook creates at run time (the self-signed TLS Secret, the namespace
// setup Lease): its own Deployment, named by PANDO_OWNER_DEPLOYMENT (the chart sets it). With the
// ownerReference the garbage collector removes those objects when `helm uninstall` deletes the
// Deployment. Read by name (RBAC: get on that one Deployment), once at start.
import { AppsV1Api, type KubeConfig, type V1OwnerReference } from '@kubernetes/client-node';

/**
 * The ownerReferences for objects in `namespace`; empty when no Deployment is named or it cannot
 * be read (the objects are then created without an owner, and `reason` says why).
 */
export async function deploymentOwner(kc: KubeConfig, namespace: string, name: string): Promise<{ ownerReferences: V1OwnerReference[]; reason?: string }> {
  if (name === '') return { ownerReferences: [] };
  try {
    const deployment = await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ name, namespace });
    const uid = deployment.metadata?.uid;
    if (!uid) return { ownerReferences: [], reason: `Deployment ${namespace}/${name} has no uid` };
    // No blockOwnerDeletion: setting it needs update on the Deployment's finalizers, which the webhook is not granted.
    return { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name, uid }] };
  } catch (err) {
    return { ownerReferences: [], reason: `reading Deployment ${namespace}/${name}: ${(err as Error).message.split('\n')[0]}` };
  }
}
