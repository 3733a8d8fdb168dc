// Public surface of the identity (Keystone v3 subset) module.
export { identityPlugin } from './plugin.js';
export type { IdentityPluginOptions } from './plugin-options.js';
export { IdentityService, type IdentityServiceOptions, type ValidToken } from './service.js';
export { loadOrCreateTokenKey } from './token-key.js';
export { TokenCodec, type TokenPayload, type AuthMethod, MIN_TOKEN_KEY_BYTES } from './token-codec.js';
export {
  defaultCatalogServices,
  renderCatalog,
  type CatalogService,
  type CatalogEndpoint,
  type EndpointInterface,
  type DefaultCatalogOptions,
  type RenderedService,
} from './catalog.js';
export { Directory, effectiveRoles, type Domain, type Project, type User, type RoleName } from './directory.js';
export { BULWARK_NAMESPACE, DEFAULT_DOMAIN_ID, domainId, projectId, userId, roleId } from './ids.js';
export { openstackErrorBody, UNAUTHORIZED_MESSAGE, type OpenStackErrorBody } from './errors.js';
