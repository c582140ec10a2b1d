// Tests that need a Debian package skip with a message naming it where it is missing, as on a
// developer's machine. `.ci/run` installs every such package and sets BATON_TEST_REQUIRE_PACKAGES=1:
// there a missing package fails the test file instead, so that CI can never pass by skipping.

export const REQUIRE_PACKAGES_ENV = 'BATON_TEST_REQUIRE_PACKAGES';

/** `missing` (why a package's tests cannot run) as a skip reason; a failure when packages are required. */
export function skipUnlessInstalled(missing: string | false | null | undefined): string | false {
  if (!missing) return false;
  if (process.env[REQUIRE_PACKAGES_ENV] === '1') {
    throw new Error(`${missing}; ${REQUIRE_PACKAGES_ENV}=1 (set by .ci/run, which installs it), so these tests may not skip`);
  }
  return missing;
}
