import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of `/proc/<pid>/stat` times (almost always 100). */
export const CLOCK_TICKS = getconf('CLK_TCK', 100);
const PAGE_SIZE = getconf('PAGESIZE', 4096);

function getconf(name: string, fallback: number): number {
  try {
    return Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim()) || fallback;
  } catch {
    return fallback;
  }
}

export interface ProcSample {
  /** utime + stime of the process, in milliseconds. */
  cpuMs: number;
  /** Resident set size in bytes. */
  rssBytes: number;
  /** Open file descriptors. */
  fds: number;
}

/** CPU time (utime + stime), RSS and open descriptors of `pid`, read from `/proc`. */
export function sampleProcess(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses; fields after the last ')' are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const rssPages = Number(fields[21]);
  return { cpuMs: ((utime + stime) * 1000) / CLOCK_TICKS, rssBytes: rssPages * PAGE_SIZE, fds: countFds(pid) };
}

function countFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

/** Hard limit of open files of this process (the server children inherit it). */
export function hardFileLimit(): number {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const line = limits.split('\n').find((l) => l.startsWith('Max open files'));
    const value = line?.trim().split(/\s+/)[4];
    return value && value !== 'unlimited' ? Number(value) : 1_048_576;
  } catch {
    return 1024;
  }
}

/** A monotonic clock shared by every process on the machine (CLOCK_MONOTONIC), in µs. */
export function nowUs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e6 + Math.floor(ns / 1000);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
