// How the command reaches Glance: the endpoint configured in nova.conf ([glance] api_servers /
// endpoint_override) or found in the Keystone catalog, and a token from the first credential source that
// has one (src/keystone/sources.ts). Authentication happens here, before anything is created, so bad
// credentials fail with nothing to clean up.
import type { SnapstoreConfig } from '../config/types.js';
import { GlanceClient } from '../glance/client.js';
import { OpenStackAuth } from '../keystone/index.js';

export interface GlanceAccess {
  client: GlanceClient;
  endpoint: string;
  endpointFrom: 'configured' | 'catalog';
  /** Where the credentials came from, or null when Glance is used without a token. */
  credentials: string | null;
  /** Where the service token's credentials came from, or null when none is sent. */
  serviceToken: string | null;
  close(): Promise<void>;
}

/** Glance as the config and the environment describe it, or null when neither names one. */
export async function openGlance(cfg: SnapstoreConfig, env: NodeJS.ProcessEnv = process.env): Promise<GlanceAccess | null> {
  const configured = cfg.glance?.endpoint;
  const storeId = cfg.glance?.storeId ?? cfg.glanceStoreId;
  const auth = OpenStackAuth.resolve({ env, ...(cfg.openstack ? { files: cfg.openstack } : {}) });
  // A fixed token without an endpoint names no Glance (as before): only Keystone credentials imply one.
  if (!configured && !auth?.hasCatalog) {
    await auth?.close();
    return null;
  }
  try {
    const endpoint = await auth?.glanceEndpoint(configured) ?? { url: configured ?? '', from: 'configured' as const };
    if (auth) {
      await auth.token();
      await auth.serviceToken();
    }
    const client = new GlanceClient({ endpoint: endpoint.url, ...(auth ? { token: auth } : {}), ...(storeId ? { storeId } : {}) });
    return {
      client,
      endpoint: endpoint.url,
      endpointFrom: endpoint.from,
      credentials: auth?.source ?? null,
      serviceToken: auth?.serviceSource ?? null,
      async close() {
        await client.close();
        await auth?.close();
      },
    };
  } catch (err) {
    await auth?.close();
    throw err;
  }
}

/** `check`'s lines about Glance. */
export function describeGlance(g: Pick<GlanceAccess, 'endpoint' | 'endpointFrom' | 'credentials' | 'serviceToken'> | null): string {
  if (!g) return 'glance: none configured (the image is only stored)';
  const lines = [
    `glance: ${g.endpoint} (${g.endpointFrom === 'catalog' ? 'from the Keystone service catalog' : 'configured'})`,
    `credentials: ${g.credentials ?? 'none (no token sent)'}`,
  ];
  if (g.serviceToken) lines.push(`service token: from ${g.serviceToken} (sent with location calls)`);
  return lines.join('\n');
}
