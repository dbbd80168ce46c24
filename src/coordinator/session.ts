// One connection to one cluster as one cephx user, with its pool handles opened once and shared by every
// snapshot the coordinator runs (the direct path does all its work through the source user's session).
import { Cluster, type Ioctx } from 'ceph-rbd-napi';

export interface SessionConfig {
  confPath: string;
  user: string;
  keyring?: string | undefined;
  connectTimeoutMs: number;
}

export class RbdSession {
  private readonly pools = new Map<string, Promise<Ioctx>>();

  private constructor(readonly cluster: Cluster) {}

  static async connect(config: SessionConfig): Promise<RbdSession> {
    const cluster = await Cluster.connect({
      confPath: config.confPath,
      user: config.user,
      ...(config.keyring ? { keyring: config.keyring } : {}),
      timeoutMs: config.connectTimeoutMs,
    });
    return new RbdSession(cluster);
  }

  get fsid(): string {
    return this.cluster.fsid;
  }

  get user(): string {
    return this.cluster.user;
  }

  ioctx(pool: string): Promise<Ioctx> {
    let io = this.pools.get(pool);
    if (!io) {
      io = this.cluster.openIoctx(pool);
      // A pool that could not be opened (missing, no caps) is retried next time, not cached.
      io.catch(() => this.pools.delete(pool));
      this.pools.set(pool, io);
    }
    return io;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map(async (p) => (await p).close()));
    await this.cluster.close();
  }
}

/** Opens a connection once, on first use; a failed attempt is retried on the next use. */
export class Lazy<T> {
  private value: Promise<T> | null = null;

  constructor(private readonly make: () => Promise<T>) {}

  get(): Promise<T> {
    if (!this.value) {
      const p = this.make();
      this.value = p;
      p.catch(() => {
        if (this.value === p) this.value = null;
      });
    }
    return this.value;
  }

  /** The value if it was made successfully, else null (for close()). */
  async settled(): Promise<T | null> {
    if (!this.value) return null;
    try {
      return await this.value;
    } catch {
      return null;
    }
  }
}
