// Picking Glance's endpoint from a Keystone v3 service catalog the way keystoneauth's adapter does: the
// service type, then the first of the valid interfaces that has an endpoint (in the region, if one is set).
import { KeystoneError } from './errors.js';
import type { CatalogService, EndpointFilter } from './types.js';

/** Interface names as keystoneauth accepts them (`publicURL` is the v2 spelling of `public`). */
function normalInterface(name: string): string {
  return name.toLowerCase().replace(/url$/, '');
}

export function endpointFrom(catalog: CatalogService[], filter: EndpointFilter, source: string): string {
  // A service whose endpoints are all disabled is listed with none: it is not there for a client.
  const usable = catalog.filter((s) => s.endpoints.length > 0);
  const services = usable.filter((s) => s.type === filter.serviceType);
  const wanted = filter.interfaces.map(normalInterface);
  for (const iface of wanted) {
    for (const service of services) {
      const hit = service.endpoints.find(
        (e) => normalInterface(e.interface) === iface && (filter.region === undefined || e.region === filter.region),
      );
      if (hit) return hit.url.replace(/\/+$/, '');
    }
  }
  const region = filter.region ? ` in region ${filter.region}` : '';
  const present = usable.map((s) => s.type).sort().join(', ') || 'nothing';
  const why = services.length === 0
    ? `has no "${filter.serviceType}" service (it lists: ${present})`
    : `has no ${wanted.join(' or ')} endpoint for "${filter.serviceType}"${region}`;
  throw new KeystoneError(
    'KEYSTONE_NO_ENDPOINT',
    `the service catalog of the token for the credentials from ${source} ${why}; set [glance] api_servers or endpoint_override, or fix valid_interfaces / region_name`,
    { context: { serviceType: filter.serviceType, interfaces: wanted, region: filter.region ?? null, source } },
  );
}
