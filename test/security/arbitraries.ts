/**
 * Hostile inputs for the property tests (fast-check): strings with every kind of code
 * unit (lone surrogates, `\u0000`, right-to-left marks), SQL and `format()`
 * metacharacters, names near the grammar's edges, deep and huge JSON. Adapters' tests
 * reuse these: see README ("Hostile input") for how to add an entry point.
 */
import fc from "fast-check";

/** Strings that have broken parsers, quoting or escaping somewhere. */
export const NASTY_STRINGS = [
  "",
  "\u0000",
  "a\u0000b",
  "\\u0000",
  "\uD800",
  "\uDFFF",
  "x\uDBFFy",
  "😀",
  "\u202Eevil",
  "'; drop table core.nodes; --",
  "\"; select pg_sleep(10); --",
  "%s %I %L %% $1 $$ $x$",
  "\\",
  "\\\\'",
  "a.b",
  "a..b",
  ".",
  "*",
  "**",
  "a.*.**",
  "-",
  "_",
  "__",
  "a__b_dlq",
  "x_rq",
  "n_00000000000000000000000000000000",
  "UPPER",
  "ünïcödé",
  " ",
  "\n\r\t",
  "a".repeat(40),
  "a".repeat(41),
  "a".repeat(255),
  "a".repeat(256),
];

/** Any string: nasty constants, arbitrary UTF-16 (lone surrogates included), printable text. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...NASTY_STRINGS),
  fc.string({ unit: "binary", maxLength: 60 }),
  fc.string({ unit: "grapheme", maxLength: 60 }),
  fc.string({ maxLength: 60 }),
);

const typeSegment = fc.stringMatching(/^[A-Za-z0-9_\-:$]{1,12}$/);

/** Event types that follow the grammar (1-255 characters of dot-separated segments). */
export const validType: fc.Arbitrary<string> = fc
  .array(typeSegment, { minLength: 1, maxLength: 6 })
  .map((segments) => segments.join("."))
  .filter((type) => type.length <= 255);

/** Patterns that follow the grammar: segments may also be `*` or `**`. */
export const validPattern: fc.Arbitrary<string> = fc
  .array(fc.oneof(typeSegment, fc.constantFrom("*", "**")), { minLength: 1, maxLength: 5 })
  .map((segments) => segments.join("."));

/** Namespace and group names of the grammar: 1-40 of [a-z0-9_-], starting with a letter or digit. */
export const validServiceName: fc.Arbitrary<string> = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,39}$/);

/** A name: valid ones, near misses and anything. */
export const anyName = (valid: fc.Arbitrary<string>): fc.Arbitrary<unknown> =>
  fc.oneof(valid, hostileString, fc.constantFrom(undefined, null, 42, {}, ["a"], Symbol("s")));

/** JSON values with hostile strings (as keys and values), numbers at the edges, deep nesting. */
export const hostileJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, -0, 1e21, -1.5e-300, 5e-324, Number.MAX_SAFE_INTEGER + 2, 0.1 + 0.2),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    hostileString,
    fc.array(tie("value"), { maxLength: 5 }),
    fc.dictionary(hostileString, tie("value"), { maxKeys: 5 }),
  ),
})).value;

/** Arrays nested `depth` deep, around Node's and PostgreSQL's recursion limits. */
export const deepJson: fc.Arbitrary<unknown> = fc.integer({ min: 1, max: 20_000 }).map((depth) => {
  let value: unknown = "bottom";
  for (let i = 0; i < depth; i += 1) value = i % 2 === 0 ? [value] : { k: value };
  return value;
});

/** Payloads: hostile JSON, deep JSON, values JSON cannot carry, and large strings around a limit. */
export const hostilePayload = (limitBytes: number): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 6, arbitrary: hostileJson },
    { weight: 1, arbitrary: deepJson },
    { weight: 1, arbitrary: fc.constantFrom(undefined, () => 1, Symbol("x"), 10n, Number.NaN, Infinity, new Date(0), new Map([[1, 2]])) },
    { weight: 1, arbitrary: fc.integer({ min: limitBytes - 64, max: limitBytes + 64 }).map((size) => ({ blob: "x".repeat(Math.max(0, size - 12)) })) },
  );

/** Headers: plain string maps with hostile keys and values, and values of the wrong kind. */
export const hostileHeaders: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(undefined),
  fc.dictionary(hostileString, hostileString, { maxKeys: 4 }),
  fc.dictionary(hostileString, fc.oneof(hostileString, fc.integer(), fc.constant(null)), { maxKeys: 3 }),
  fc.constantFrom(null, "h", ["a"], 7),
);

/** What JSON (and so jsonb) makes of a value, canonical: the form a round trip must return. */
export function jsonForm(value: unknown): string {
  return canonicalJson(JSON.parse(JSON.stringify(value)));
}

/**
 * JSON text with object keys sorted: two values are equal under JSON semantics (jsonb
 * reorders keys) when their canonical texts are. A string compare, so that payloads
 * nested thousands deep compare without the deep recursion of `toEqual`.
 */
export function canonicalJson(root: unknown): string {
  // Iterative, with an explicit stack: recursion would overflow on payloads nested
  // thousands deep (which PostgreSQL stores and JSON.stringify still writes).
  const out: string[] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const item = stack.pop();
    if (item instanceof Literal) {
      out.push(item.text);
    } else if (Array.isArray(item)) {
      const parts: unknown[] = [new Literal("[")];
      item.forEach((element, index) => parts.push(...(index > 0 ? [new Literal(","), element] : [element])));
      parts.push(new Literal("]"));
      for (let i = parts.length - 1; i >= 0; i -= 1) stack.push(parts[i]);
    } else if (item !== null && typeof item === "object") {
      const entries = Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const parts: unknown[] = [new Literal("{")];
      entries.forEach(([key, value], index) => parts.push(new Literal(`${index > 0 ? "," : ""}${JSON.stringify(key)}:`), value));
      parts.push(new Literal("}"));
      for (let i = parts.length - 1; i >= 0; i -= 1) stack.push(parts[i]);
    } else {
      out.push(JSON.stringify(item));
    }
  }
  return out.join("");
}

/** Text already serialised, on canonicalJson's stack. */
class Literal {
  constructor(readonly text: string) {}
}

/** Cases each property runs: at least 1,000 in CI (NEXUS_PROPERTY_RUNS overrides). */
export const PROPERTY_RUNS = Number(process.env.NEXUS_PROPERTY_RUNS ?? 1_000);
