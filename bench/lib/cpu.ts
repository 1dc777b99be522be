/**
 * Where CPU time goes during a measured loop: this process (the producers, consumers and
 * driver) versus the rest of the machine (mostly the PostgreSQL backends when the server
 * is local). The machine's busy time comes from /proc/stat and is absent elsewhere.
 */
import { readFileSync } from "node:fs";

/** A point to measure from. */
export interface CpuMark {
  processUs: number;
  machineMs: number | undefined;
}

/** CPU used between two marks, in milliseconds. */
export interface CpuUse {
  /** This Node process (user + system). */
  processMs: number;
  /** Every CPU of the machine minus this process; undefined where /proc/stat is missing. */
  otherMs: number | undefined;
}

/** Clock ticks per second of /proc/stat (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

function machineBusyMs(): number | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    return (((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * 1000) / USER_HZ;
  } catch {
    return undefined;
  }
}

/** Marks now. */
export function cpuMark(): CpuMark {
  const usage = process.cpuUsage();
  return { processUs: usage.user + usage.system, machineMs: machineBusyMs() };
}

/** CPU used since `from`. */
export function cpuSince(from: CpuMark): CpuUse {
  const to = cpuMark();
  const processMs = (to.processUs - from.processUs) / 1000;
  const machineMs = to.machineMs !== undefined && from.machineMs !== undefined ? to.machineMs - from.machineMs : undefined;
  return { processMs: Math.round(processMs), otherMs: machineMs === undefined ? undefined : Math.max(0, Math.round(machineMs - processMs)) };
}
