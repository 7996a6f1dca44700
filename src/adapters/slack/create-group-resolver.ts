import type { Logger } from "pino";
import type { Config } from "../../core/config.ts";

export interface GroupResolverOptions {
  /** Slack user group ids to track, with or without the `slack:` prefix (`S0SRE`, `slack:S0SRE`). */
  groupIds: readonly string[];
  /** The members of one group (usergroups.users.list). */
  listMembers(groupId: string): Promise<string[]>;
  /** How long a group's member list is trusted; a removed member loses the group within this time. */
  ttlMs?: number;
  /** After a failed refresh, how long to wait before asking Slack again (the group counts as not held). */
  retryAfterFailureMs?: number;
  now?: () => number;
  log: Logger;
}

export interface GroupResolver {
  /** The tracked groups the user is in, as principals (`slack:S…`). */
  groupsOf(userId: string): Promise<string[]>;
}

interface Entry {
  members: ReadonlySet<string>;
  fetchedAt: number;
}

const groupIdPattern = /^S[A-Z0-9]{2,}$/;

/** `slack:S0SRE` and `S0SRE` → `S0SRE`; anything that is not a Slack user group id → undefined. */
export function toSlackGroupId(principal: string): string | undefined {
  const id = principal.startsWith("slack:") ? principal.slice("slack:".length) : principal;
  return groupIdPattern.test(id) ? id : undefined;
}

/** Every Slack user group the configuration grants something to: the only groups worth resolving. */
export function slackGroupIdsOf(config: Config): string[] {
  const ids = new Set<string>();
  for (const role of Object.values(config.roles)) {
    for (const group of role.groups) {
      if (!group.startsWith("slack:")) continue;
      const id = toSlackGroupId(group);
      if (id !== undefined) ids.add(id);
    }
  }
  return [...ids].sort();
}

/**
 * Resolves a user's Slack user groups from member lists cached for `ttlMs` (5 minutes by default).
 * Fails closed: a group whose list is stale and cannot be fetched counts as not held, so a Slack outage
 * can only take roles away, never keep a removed member in. Lists are fetched one at a time
 * (usergroups.users.list is Tier 2, about 20 calls a minute) and concurrent lookups share one fetch.
 */
export function createGroupResolver(options: GroupResolverOptions): GroupResolver {
  const ttlMs = options.ttlMs ?? 5 * 60_000;
  const retryAfterFailureMs = options.retryAfterFailureMs ?? 10_000;
  const now = options.now ?? Date.now;
  const ids = [...new Set(options.groupIds.map(toSlackGroupId).filter((id) => id !== undefined))];
  const cache = new Map<string, Entry>();
  const failedAt = new Map<string, number>();
  let inflight: Promise<void> | undefined;

  async function refreshStale(): Promise<void> {
    for (const id of ids) {
      const entry = cache.get(id);
      if (entry !== undefined && now() - entry.fetchedAt < ttlMs) continue;
      const failed = failedAt.get(id);
      if (failed !== undefined && now() - failed < retryAfterFailureMs) continue;
      try {
        const members = await options.listMembers(id);
        cache.set(id, { members: new Set(members), fetchedAt: now() });
        failedAt.delete(id);
      } catch (error) {
        failedAt.set(id, now());
        // Drop the stale list: fail closed until Slack answers again.
        cache.delete(id);
        options.log.warn(
          { err: error, group: id },
          "could not read a Slack user group; it grants nothing until it can be read",
        );
      }
    }
  }

  function isStale(): boolean {
    const t = now();
    return ids.some((id) => {
      const entry = cache.get(id);
      if (entry !== undefined && t - entry.fetchedAt < ttlMs) return false;
      const failed = failedAt.get(id);
      return !(failed !== undefined && t - failed < retryAfterFailureMs);
    });
  }

  return {
    async groupsOf(userId) {
      if (isStale()) {
        inflight ??= refreshStale().finally(() => {
          inflight = undefined;
        });
        await inflight;
      }
      // After the refresh every entry is fresh or gone (a failed read drops it).
      return ids.filter((id) => cache.get(id)?.members.has(userId) === true).map((id) => `slack:${id}`);
    },
  };
}
