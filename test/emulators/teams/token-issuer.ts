import { createPublicKey, generateKeyPairSync, type KeyObject, randomUUID, sign, verify } from "node:crypto";

/**
 * A local stand-in for the Bot Framework token services: RSA key pairs, the JWKS and OpenID metadata
 * that botbuilder reads to check inbound tokens, and signing of the two kinds of token involved:
 * channel → bot (what Teams puts on each activity) and bot → channel (what the bot sends the connector).
 */

export const channelIssuer = "https://api.botframework.com";
export const botFrameworkAudience = "https://api.botframework.com";
/** Issuer of the bot's outbound tokens here (Entra in real life). */
export const outboundIssuer = "https://login.emulated.test/botframework.com/v2.0";

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  endorsements: string[];
}

export interface SignActivityTokenOptions {
  /** The bot's app id, as Teams sets it. */
  audience: string;
  /** Must equal the activity's serviceUrl. */
  serviceUrl: string;
  /** Key id in the header; default the issuer's first key. */
  kid?: string;
  /** Seconds from now until expiry; negative for an expired token. Default 3600. */
  expiresIn?: number;
  /** Sign with a key the issuer does not publish (while still naming `kid`). */
  foreignKey?: boolean;
  issuer?: string;
}

export interface TokenIssuer {
  /** The first published key id. */
  kid: string;
  jwks(): { keys: Array<Record<string, unknown>> };
  openIdConfiguration(baseUrl: string): Record<string, unknown>;
  signActivityToken(options: SignActivityTokenOptions): string;
  /** The bot's outbound token for the connector (what MSAL would fetch). */
  signBotToken(appId: string, audience: string): string;
  /** Checks a bot → connector token; returns why it is refused, or undefined when it is good. */
  checkBotToken(authorization: string | undefined, appId: string): string | undefined;
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");

function signJwt(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject): string {
  const data = `${b64({ alg: "RS256", typ: "JWT", ...header })}.${b64(payload)}`;
  return `${data}.${sign("sha256", Buffer.from(data), key).toString("base64url")}`;
}

function newKey(kid: string, endorsements: string[]): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { kid, privateKey, publicKey, endorsements };
}

export function createTokenIssuer(options: { endorsements?: string[] } = {}): TokenIssuer {
  const endorsements = options.endorsements ?? ["msteams"];
  const keys = [newKey(`k-${randomUUID().slice(0, 8)}`, endorsements)];
  const first = keys[0] as SigningKey;
  const stranger = newKey("unpublished", endorsements);
  const now = () => Math.floor(Date.now() / 1000);

  return {
    kid: first.kid,
    jwks() {
      return {
        keys: keys.map((k) => ({
          ...(k.publicKey.export({ format: "jwk" }) as Record<string, unknown>),
          kid: k.kid,
          use: "sig",
          alg: "RS256",
          endorsements: k.endorsements,
        })),
      };
    },
    openIdConfiguration(baseUrl) {
      return {
        issuer: channelIssuer,
        authorization_endpoint: `${baseUrl}/v1/authorize`,
        jwks_uri: `${baseUrl}/v1/.well-known/keys`,
        id_token_signing_alg_values_supported: ["RS256"],
        token_endpoint_auth_methods_supported: ["private_key_jwt"],
      };
    },
    signActivityToken(o) {
      const t = now();
      const expiresIn = o.expiresIn ?? 3600;
      const key = o.foreignKey ? stranger : first;
      return signJwt(
        { kid: o.kid ?? first.kid },
        {
          iss: o.issuer ?? channelIssuer,
          aud: o.audience,
          serviceurl: o.serviceUrl,
          nbf: Math.min(t, t + expiresIn) - 60,
          iat: Math.min(t, t + expiresIn) - 60,
          exp: t + expiresIn,
        },
        key.privateKey,
      );
    },
    signBotToken(appId, audience) {
      const t = now();
      return signJwt(
        { kid: first.kid },
        {
          iss: outboundIssuer,
          aud: audience,
          appid: appId,
          azp: appId,
          ver: "2.0",
          iat: t,
          nbf: t,
          exp: t + 3600,
        },
        first.privateKey,
      );
    },
    checkBotToken(authorization, appId) {
      const match = /^Bearer (.+)$/.exec(authorization ?? "");
      if (!match?.[1]) return "no bearer token";
      const [h, p, s] = match[1].split(".");
      if (!h || !p || !s) return "malformed token";
      const publicKey = createPublicKey(first.privateKey);
      if (!verify("sha256", Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, "base64url")))
        return "bad signature";
      const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
      if (claims.aud !== botFrameworkAudience) return `wrong audience ${String(claims.aud)}`;
      if (claims.appid !== appId) return `wrong appid ${String(claims.appid)}`;
      if (typeof claims.exp !== "number" || claims.exp < now()) return "expired";
      return undefined;
    },
  };
}
