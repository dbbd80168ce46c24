// leftovers() from the test bed lists a whole pool and then each image's snapshots; an image another test
// file deletes in between fails that second step with ENOENT. Retrying gives a consistent listing.
import { leftovers, type ClusterInfo, type PoolContents } from '../support/testbed.js';

export async function stableLeftovers(cluster: ClusterInfo, pool: string, marker: string): Promise<PoolContents> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await leftovers(cluster, pool, marker);
    } catch (err) {
      if (attempt >= 5 || !/No such file or directory/.test(String((err as Error).message))) throw err;
    }
  }
}
