/** Edit distance with transpositions, small inputs only (names typed in chat). */
function distance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? 0;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, at(i - 2, j - 2) + 1);
      const row = d[i];
      if (row) row[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** The closest known name, if it is close enough to be a likely typo. */
export function suggest(input: string, known: Iterable<string>): string | undefined {
  const needle = input.toLowerCase().slice(0, 64);
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const name of known) {
    const score = distance(needle, name.toLowerCase());
    if (score < bestScore) {
      best = name;
      bestScore = score;
    }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(1, Math.floor(Math.max(needle.length, best.length) / 3));
  return bestScore <= limit ? best : undefined;
}

/** "did you mean `api`?" or a list of what exists. */
export function describeUnknown(kind: string, input: string, known: string[]): string {
  const shown = input.length > 40 ? `${input.slice(0, 40)}…` : input;
  const guess = suggest(input, known);
  if (guess) return `no ${kind} \`${shown}\`; did you mean \`${guess}\`?`;
  return `no ${kind} \`${shown}\`; known ${kind}s: ${known.join(", ") || "none"}`;
}
