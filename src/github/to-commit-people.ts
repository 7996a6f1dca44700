/** A person behind a commit: the GitHub login when GitHub linked the email to an account. */
export interface CommitPerson {
  name?: string;
  email?: string;
  login?: string;
}

/** The parts of a REST commit object this reads (both `repos.getCommit` and compare entries have them). */
export interface CommitLike {
  sha: string;
  commit: {
    message: string;
    author?: { name?: string; email?: string; date?: string } | null;
    committer?: { name?: string; email?: string; date?: string } | null;
  };
  author?: { login?: string } | Record<string, never> | null;
}

const coAuthor = /^co-authored-by:\s*(.+?)\s*<([^>]+)>\s*$/gim;

function person(
  name: string | undefined,
  email: string | undefined,
  login: string | undefined,
): CommitPerson {
  return {
    ...(name ? { name } : {}),
    ...(email ? { email: email.toLowerCase() } : {}),
    ...(login ? { login } : {}),
  };
}

/** The author and every `Co-authored-by:` trailer; approvals that exclude commit authors need all of them. */
export function toCommitPeople(commit: CommitLike): CommitPerson[] {
  const login = commit.author && "login" in commit.author ? commit.author.login : undefined;
  const people = [person(commit.commit.author?.name, commit.commit.author?.email, login)];
  for (const match of commit.commit.message.matchAll(coAuthor)) {
    people.push(person(match[1], match[2], undefined));
  }
  return uniquePeople(people);
}

/** One entry per login or email, first seen wins. */
export function uniquePeople(people: CommitPerson[]): CommitPerson[] {
  const seen = new Set<string>();
  const out: CommitPerson[] = [];
  for (const p of people) {
    const keys = [p.login && `login:${p.login.toLowerCase()}`, p.email && `email:${p.email}`].filter(
      (k): k is string => typeof k === "string",
    );
    if (keys.length === 0 || keys.some((k) => seen.has(k))) continue;
    for (const k of keys) seen.add(k);
    out.push(p);
  }
  return out;
}

export function firstLine(message: string): string {
  const line = message.split("\n", 1)[0] ?? "";
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}
