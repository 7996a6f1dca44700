import type { Redis } from "ioredis";
import { z } from "zod";

/**
 * Where a Teams conversation can be reached: the connector's serviceUrl (it differs per region and
 * tenant), the bot's id in it and the tenant. Taken only from authenticated activities, so a forged
 * request cannot point the bot's outbound token at another host.
 */
export const teamsConversationReferenceSchema = z.object({
  /** Conversation id without a `;messageid=` reply-chain suffix. */
  conversationId: z.string().min(1).max(512),
  serviceUrl: z.url({ protocol: /^https?$/ }),
  channelId: z.string().min(1).max(64),
  botId: z.string().min(1).max(256),
  botName: z.string().max(256).optional(),
  tenantId: z.string().max(64).optional(),
  conversationType: z.string().max(64).optional(),
  isGroup: z.boolean().optional(),
});
export type TeamsConversationReference = z.infer<typeof teamsConversationReferenceSchema>;

export interface ConversationStore {
  save(reference: TeamsConversationReference): Promise<void>;
  load(conversationId: string): Promise<TeamsConversationReference | undefined>;
}

export interface ConversationStoreOptions {
  redis: Redis;
  /** Key prefix, normally the configuration's redisPrefix. */
  prefix: string;
  /** How long a reference outlives the last activity seen in its conversation; default 90 days. */
  ttlSeconds?: number;
}

/**
 * Conversation references in Redis, one key per conversation, so any replica (and any process after a
 * restart) can post a card into a conversation it never received a message from. Each authenticated
 * activity refreshes the reference: Teams can move a conversation to another serviceUrl.
 */
export function createConversationStore(options: ConversationStoreOptions): ConversationStore {
  const { redis, prefix } = options;
  const ttl = options.ttlSeconds ?? 90 * 24 * 3600;
  const key = (conversationId: string) => `${prefix}:teams:conversation:${conversationId}`;
  return {
    async save(reference) {
      await redis.set(key(reference.conversationId), JSON.stringify(reference), "EX", ttl);
    },
    async load(conversationId) {
      const raw = await redis.get(key(conversationId));
      if (raw === null) return undefined;
      const parsed = teamsConversationReferenceSchema.safeParse(JSON.parse(raw));
      return parsed.success ? parsed.data : undefined;
    },
  };
}
