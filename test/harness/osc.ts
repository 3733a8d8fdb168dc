// The environment Debian's openstack / cinder clients need to reach a test
// deployment as one of the harness users (TEST_IDENTITY in aio.ts).
export const OPENSTACK = '/usr/bin/openstack';

const PASSWORDS: Record<string, { password: string; project: string }> = {
  admin: { password: 'admin-pw', project: 'admin' },
  alice: { password: 'alice-pw', project: 'alpha' },
  bob: { password: 'bob-pw', project: 'beta' },
};

export function oscEnv(apiUrl: string, user: 'admin' | 'alice' | 'bob' = 'alice', volumeVersion = '3.64'): NodeJS.ProcessEnv {
  const u = PASSWORDS[user]!;
  return {
    PATH: '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? '/root',
    OS_AUTH_URL: `${apiUrl}/identity/v3`,
    OS_USERNAME: user,
    OS_PASSWORD: u.password,
    OS_PROJECT_NAME: u.project,
    OS_USER_DOMAIN_NAME: 'Default',
    OS_PROJECT_DOMAIN_NAME: 'Default',
    OS_IDENTITY_API_VERSION: '3',
    OS_VOLUME_API_VERSION: volumeVersion,
    OS_IMAGE_API_VERSION: '2',
    OS_AUTH_TYPE: 'password',
    OS_INTERFACE: 'public',
  };
}
