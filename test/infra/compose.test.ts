/**
 * infra/ checked without a Docker engine: the compose file parses (test/infra/mini-yaml.ts), has the dev stack
 * RELIABILITY.md asks for (MinIO + bucket init, Redis noeviction + AOF, PostgreSQL, api + worker), and every
 * DELTAGATE_* variable it sets is one `src/config.ts` knows and validates — with the hosts, credentials and
 * bucket agreeing across services. Also the Dockerfile and .ci/run essentials, and the install: no
 * onnxruntime CUDA download (allowScripts for npm 11, ONNXRUNTIME_NODE_INSTALL=skip for any npm) and no
 * project .npmrc key npm does not know (npm 11 warns about one on every command).
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLE_NAMES, loadConfig, type Config } from '../../src/config.js';
import { parseYaml, type Yaml } from './mini-yaml.js';

const root = new URL('../../', import.meta.url);
const read = (p: string) => readFileSync(new URL(p, root), 'utf8');

type Service = {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
};
const compose = parseYaml(read('infra/docker-compose.yml')) as {
  services: Record<string, Service>;
  volumes: Yaml;
};
const services = compose.services;

/** Compose's `${VAR:-default}` interpolation with an empty shell environment. */
function interpolate(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).map(([k, v]) => [
      k,
      v.replace(/\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}/g, (_, _n, d: string) => d ?? ''),
    ]),
  );
}

describe('infra/docker-compose.yml', () => {
  it('has the dev stack services', () => {
    expect(Object.keys(services).sort()).toEqual([
      'api',
      'minio',
      'minio-init',
      'postgres',
      'redis',
      'worker',
    ]);
    expect(services.minio!.image).toMatch(/^minio\/minio/);
    expect(services['minio-init']!.image).toMatch(/^minio\/mc/);
    expect(services.postgres!.image).toMatch(/^postgres:/);
    expect(services.redis!.image).toMatch(/^redis:/);
  });

  it('runs Redis with noeviction and an append-only file', () => {
    const cmd = services.redis!.command!.join(' ');
    expect(cmd).toContain('--maxmemory-policy noeviction');
    expect(cmd).toContain('--appendonly yes');
  });

  it('builds api and worker from infra/Dockerfile and starts them as `deltagate serve` / `deltagate worker`', () => {
    for (const [name, command] of [
      ['api', 'serve'],
      ['worker', 'worker'],
    ] as const) {
      const s = services[name]!;
      expect(s.build).toEqual({ context: '..', dockerfile: 'infra/Dockerfile' });
      expect(s.command).toEqual([command]);
      expect(Object.keys(s.depends_on ?? {}).sort()).toEqual(['minio-init', 'postgres', 'redis']);
      expect(s.depends_on!['minio-init']!.condition).toBe('service_completed_successfully');
    }
  });

  it('uses only DELTAGATE_* variables that src/config.ts knows, and they validate', () => {
    const configs: Record<string, Config> = {};
    for (const name of ['api', 'worker']) {
      const env = interpolate(services[name]!.environment ?? {});
      const unknown = Object.keys(env).filter(
        (k) => k.startsWith('DELTAGATE_') && !CONFIG_VARIABLE_NAMES.has(k),
      );
      expect(unknown, `${name} sets variables src/config.ts does not read`).toEqual([]);
      configs[name] = loadConfig(env);
    }
    const { api, worker } = configs as { api: Config; worker: Config };
    expect(api.database).toEqual({
      kind: 'postgres',
      url: 'postgres://deltagate:deltagate@postgres:5432/deltagate',
    });
    expect(api.storage).toMatchObject({
      kind: 's3',
      endpoint: 'http://minio:9000',
      bucket: 'deltagate',
      forcePathStyle: true,
    });
    expect(api.redisUrl).toBe('redis://redis:6379');
    expect(api.adminKey).not.toBeNull();
    expect(api.production).toBe(true);
    // Both processes must see the same metadata, blobs and queue.
    expect([worker.database, worker.storage, worker.redisUrl, worker.dataDir]).toEqual([
      api.database,
      api.storage,
      api.redisUrl,
      api.dataDir,
    ]);
  });

  it('wires hosts, credentials and the bucket consistently with the other services', () => {
    const api = loadConfig(interpolate(services.api!.environment!));
    const pg = services.postgres!.environment!;
    const db = new URL((api.database as { url: string }).url);
    expect([db.hostname, db.username, db.password, db.pathname.slice(1)]).toEqual([
      'postgres',
      pg.POSTGRES_USER,
      pg.POSTGRES_PASSWORD,
      pg.POSTGRES_DB,
    ]);
    const minio = services.minio!.environment!;
    const s3 = api.storage as {
      endpoint: string;
      bucket: string;
      accessKeyId: string;
      secretAccessKey: string;
    };
    expect(new URL(s3.endpoint).hostname).toBe('minio');
    expect([s3.accessKeyId, s3.secretAccessKey]).toEqual([minio.MINIO_ROOT_USER, minio.MINIO_ROOT_PASSWORD]);
    const init = services['minio-init']!;
    expect(init.environment!.BUCKET).toBe(s3.bucket);
    expect(init.command!.join(' ')).toContain('mc mb --ignore-existing');
    expect(new URL(api.redisUrl!).hostname).toBe('redis');
  });
});

describe('infra/Dockerfile and .ci/run', () => {
  it('builds on node 20 with npm ci, skipping the onnxruntime download', () => {
    const docker = read('infra/Dockerfile');
    expect(docker).toMatch(/^FROM node:20/m);
    expect(docker).toMatch(/^ENV ONNXRUNTIME_NODE_INSTALL=skip$/m);
    expect(docker).toMatch(/^RUN npm ci\b/m);
    expect(docker).not.toMatch(/\.npmrc/);
    expect(docker).toMatch(/ENTRYPOINT \["node", "bin\/deltagate.js"\]/);
  });

  it('npm skips the onnxruntime CUDA download with no config key npm does not know', () => {
    // npm 11 warns 'Unknown project config "onnxruntime-node-install"' on every command for such a key.
    expect(existsSync(new URL('.npmrc', root))).toBe(false);
    const pkg = JSON.parse(read('package.json')) as { allowScripts?: Record<string, boolean> };
    const lock = JSON.parse(read('package-lock.json')) as {
      packages: Record<string, { hasInstallScript?: boolean }>;
    };
    // Every dependency with an install script is reviewed (else npm 11 warns), onnxruntime-node's denied.
    const withScripts = new Set(
      Object.entries(lock.packages)
        .filter(([, p]) => p.hasInstallScript)
        .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)),
    );
    expect(Object.keys(pkg.allowScripts ?? {}).sort()).toEqual([...withScripts].sort());
    expect(Object.entries(pkg.allowScripts ?? {}).filter(([, allowed]) => !allowed)).toEqual([
      ['onnxruntime-node', false],
    ]);
    // npm versions without allowScripts (npm 10 ships with Node 20): the package's own switch.
    expect(read('.ci/run')).toMatch(/^export ONNXRUNTIME_NODE_INSTALL=skip$/m);
  });

  it(".ci/run is executable, installs with npm ci and runs README's test command", () => {
    const ci = new URL('.ci/run', root);
    accessSync(ci, constants.X_OK);
    const lines = read('.ci/run')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(lines.slice(-2)).toEqual(['npm ci', 'npm test']);
    if (existsSync(new URL('README.md', root))) expect(read('README.md')).toMatch(/^npm test\b/m);
  });
});
