#!/usr/bin/env node
/**
 * A port nothing listens on right now (the kernel's choice), on 127.0.0.1.
 * @returns {Promise<number>}
 */
export function freePort(): Promise<number>;
/**
 * Starts a one-node cluster under `dir` (scripts/ceph-cluster.sh) on a free port.
 * @param {string} dir
 * @param {{ bluestore?: boolean, cloneV2?: boolean, stockFeatures?: boolean, reef?: boolean, mgr?: boolean }} [opts]
 *   reef: daemons from the trixie root (Ceph 18.2), scripts/trixie-root.sh; mgr: with a ceph-mgr
 * @returns {Promise<ClusterInfo>}
 */
export function startCluster(dir: string, { bluestore, cloneV2, stockFeatures, reef, mgr }?: {
    bluestore?: boolean;
    cloneV2?: boolean;
    stockFeatures?: boolean;
    reef?: boolean;
    mgr?: boolean;
}): Promise<ClusterInfo>;
/** @param {string} dir @returns {Promise<void>} */
export function stopCluster(dir: string): Promise<void>;
/**
 * Starts a glance-api under `dir` on a free port, storing into the cluster under `cephDir`.
 * @param {string} dir
 * @param {string} cephDir
 * @param {{ multipleLocations?: boolean, sizeCap?: number, multiStore?: boolean, pool?: string, user?: string, cephConf?: string }} [opts]
 *   sizeCap: glance's image_size_cap in bytes; multiStore: enabled_backends with an rbd and a file store;
 *   pool/user/cephConf: the rbd store's pool, cephx user and ceph.conf (a test's own pools, own-pools.ts;
 *   defaults `images`, `glance`, cephDir/ceph.conf)
 * @returns {Promise<GlanceInfo>}
 */
export function startGlance(dir: string, cephDir: string, { multipleLocations, sizeCap, multiStore, pool, user, cephConf }?: {
    multipleLocations?: boolean;
    sizeCap?: number;
    multiStore?: boolean;
    pool?: string;
    user?: string;
    cephConf?: string;
}): Promise<GlanceInfo>;
/** @param {string} dir @returns {Promise<void>} */
export function stopGlance(dir: string): Promise<void>;
/**
 * Starts the whole test bed under `root` (emptied first) and writes root/testbed.json.
 * @param {string} root
 * @returns {Promise<TestbedEnv>}
 */
export function up(root: string): Promise<TestbedEnv>;
/**
 * Stops everything recorded under `root`, by PID.
 * @param {string} root
 * @returns {Promise<void>}
 */
export function down(root: string): Promise<void>;
/**
 * A running test bed's description (its testbed.json).
 * @param {string} file
 * @returns {TestbedEnv}
 */
export function load(file: string): TestbedEnv;
export type ClusterInfo = {
    /**
     * Directory holding the cluster's state, keyrings and ceph.conf.
     */
    dir: string;
    /**
     * Path of the cluster's ceph.conf (every user's keyring is referenced from it).
     */
    conf: string;
    fsid: string;
    /**
     * The mon's v2 port on 127.0.0.1.
     */
    port: number;
    /**
     * 2 when the cluster requires mimic clients (clone format 2 possible), else 1.
     */
    cloneFormat: 1 | 2;
    /**
     * The Ceph the daemons run: the host's 16.2, or 18.2 from the trixie root (absent: pacific).
     */
    release?: "pacific" | "reef" | undefined;
};
export type GlanceInfo = {
    dir: string;
    url: string;
    conf: string;
};
export type TestbedEnv = {
    root: string;
    clusters: {
        a: ClusterInfo;
        b: ClusterInfo;
    };
    glance: GlanceInfo;
};
