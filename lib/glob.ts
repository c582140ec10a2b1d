// Glob patterns for configuration (controller CNs, authorization rules): `*` matches any run of
// characters (slashes included), `?` one character; everything else is literal.

export type GlobMatcher = (value: string) => boolean;

export function compileGlob(pattern: string): GlobMatcher {
  if (pattern === '*') return () => true;
  if (!/[*?]/.test(pattern)) return (value) => value === pattern;
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.');
  const re = new RegExp(`^${source}$`, 's');
  return (value) => re.test(value);
}

export function compileGlobList(patterns: readonly string[]): GlobMatcher {
  const matchers = patterns.map(compileGlob);
  return (value) => matchers.some((m) => m(value));
}
