// Cinder Block Storage API v3, mounted under a prefix (default /volume) as a tree
// of route modules. The hook here authenticates, checks the project in the URL
// against the token and negotiates the microversion before any handler runs.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import { ApiError } from '../errors.js';
import { format, negotiate } from '../microversion.js';
import { makeScope, type Authenticate } from './scope.js';
import { registerVersionRoutes } from './routes/versions.js';
import { registerVolumeRoutes } from './routes/volumes.js';
import { registerVolumeActionRoutes } from './routes/volume-actions.js';
import { registerAttachmentRoutes } from './routes/attachments.js';
import { registerVolumeTypeRoutes } from './routes/types.js';
import { registerTypeSpecRoutes } from './routes/type-specs.js';
import { registerQuotaRoutes } from './routes/quotas.js';
import { registerServiceRoutes } from './routes/services.js';
import { registerSnapshotRoutes } from './routes/snapshots.js';
import { registerGroupTypeRoutes } from './routes/group-types.js';
import { registerGroupRoutes } from './routes/groups.js';
import { registerGroupSnapshotRoutes } from './routes/group-snapshots.js';
import { registerTransferRoutes } from './routes/transfers.js';
import { registerQosSpecsRoutes } from './routes/qos-specs.js';
import { registerEncryptionTypeRoutes } from './routes/encryption-types.js';
import { registerBackendRoutes } from './routes/backends.js';
import { registerMessageRoutes } from './routes/messages.js';
import { registerBackupRoutes } from './routes/backups.js';
import { registerRepositoryAdminRoutes } from './routes/repository-admin.js';
import { registerProtectionPlanRoutes } from './routes/protection-plans.js';

export interface CinderPluginOptions {
  readonly deps: ServiceDeps;
  readonly authenticate: Authenticate;
  /** e.g. http://127.0.0.1:8776/volume */
  readonly publicBaseUrl: string;
}

export type RouteRegistrar = (app: FastifyInstance, opts: CinderPluginOptions) => void;

/** Further resources (snapshots, types, groups, ...) add themselves here. */
export const cinderRouteModules: RouteRegistrar[] = [registerVolumeRoutes, registerVolumeActionRoutes, registerAttachmentRoutes, registerVolumeTypeRoutes, registerTypeSpecRoutes, registerQuotaRoutes, registerServiceRoutes, registerSnapshotRoutes, registerGroupTypeRoutes, registerGroupRoutes, registerGroupSnapshotRoutes, registerTransferRoutes, registerQosSpecsRoutes, registerEncryptionTypeRoutes, registerBackendRoutes, registerMessageRoutes, registerBackupRoutes, registerRepositoryAdminRoutes];
// Bulwark's protection-plan extension.
cinderRouteModules.push(registerProtectionPlanRoutes);

export async function cinderPlugin(app: FastifyInstance, opts: CinderPluginOptions): Promise<void> {
  app.decorateRequest('cinder', null);
  registerVersionRoutes(app, opts);
  await app.register(async (scoped) => {
    scoped.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
      const version = negotiate(req.headers);
      reply.header('OpenStack-API-Version', `volume ${format(version)}`);
      reply.header('Vary', 'OpenStack-API-Version');
      const token = req.headers['x-auth-token'];
      const user = typeof token === 'string' ? opts.authenticate(token) : null;
      if (!user) throw new ApiError(401, 'The request you have made requires authentication.');
      const params = req.params as Record<string, string | undefined>;
      const projectId = params['project_id'] ?? '';
      if (user.projectId !== projectId) throw new ApiError(400, 'Malformed request url');
      req.cinder = makeScope(user, projectId, opts.publicBaseUrl, version);
      // "/volumes/" matches "/volumes/:id" with an empty id; Cinder has no such route.
      if (Object.entries(params).some(([k, v]) => k !== 'project_id' && v === '')) throw new ApiError(404, 'The resource could not be found.');
    });
    for (const register of cinderRouteModules) register(scoped, opts);
  }, { prefix: '/v3/:project_id' });
}
