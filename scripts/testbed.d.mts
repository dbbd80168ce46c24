export interface ClusterInfo {
  /** Directory holding the cluster's state, keyrings and ceph.conf. */
  dir: string;
  /** Path of the cluster's ceph.conf (every user's keyring is referenced from it). */
  conf: string;
  fsid: string;
  /** The mon's v2 port on 127.0.0.1. */
  port: number;
  /** 2 when the cluster requires mimic clients (clone format 2 possible), else 1. */
  cloneFormat: 1 | 2;
}
export interface GlanceInfo {
  dir: string;
  url: string;
  conf: string;
}
export interface TestbedEnv {
  root: string;
  clusters: { a: ClusterInfo; b: ClusterInfo };
  glance: GlanceInfo;
}
export function freePort(): Promise<number>;
export function startCluster(dir: string, opts?: { bluestore?: boolean; cloneV2?: boolean; stockFeatures?: boolean }): Promise<ClusterInfo>;
export function stopCluster(dir: string): Promise<void>;
/** sizeCap: glance-api's image_size_cap (bytes); multiStore: stores `ceph` (rbd, default) and `local` (file). */
export function startGlance(dir: string, cephDir: string, opts?: { multipleLocations?: boolean; sizeCap?: number; multiStore?: boolean }): Promise<GlanceInfo>;
export function stopGlance(dir: string): Promise<void>;
export function up(root: string): Promise<TestbedEnv>;
export function down(root: string): Promise<void>;
export function load(file: string): TestbedEnv;
