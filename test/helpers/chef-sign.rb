# Signs Chef Server API requests with Chef's own library (mixlib-authentication), for tests.
# Reads a JSON array on stdin, each item
#   {key_path, userid, method, path, body, version, timestamp?, server_api_version?}
# (other keys are ignored), and prints a JSON array of the same length: for each item the
# headers a Chef client sends (X-Ops-Sign, X-Ops-Userid, X-Ops-Timestamp, X-Ops-Content-Hash,
# X-Ops-Authorization-N, and X-Ops-Server-API-Version when asked for), or {"error": message}.
# Debian's Ruby needs openssl loaded before mixlib-authentication (else: superclass mismatch).
require "openssl"
require "json"
require "time"
require "mixlib/authentication/signedheaderauth"

ALGORITHM = { "1.0" => "sha1", "1.1" => "sha1", "1.3" => "sha256" }.freeze
keys = {}

requests = JSON.parse($stdin.read)
results = requests.map do |r|
  begin
    key = (keys[r["key_path"]] ||= OpenSSL::PKey::RSA.new(File.read(r["key_path"])))
    version = r["version"] || "1.3"
    extra = {}
    extra["X-Ops-Server-API-Version"] = r["server_api_version"].to_s if r["server_api_version"]
    signer = Mixlib::Authentication::SignedHeaderAuth.signing_object(
      http_method: r["method"].downcase.to_sym,
      path: r["path"],
      body: r["body"] || "",
      timestamp: r["timestamp"] || Time.now.utc.iso8601,
      user_id: r["userid"],
      proto_version: version,
      headers: extra
    )
    signer.sign(key, sign_version: version, sign_algorithm: r["algorithm"] || ALGORITHM[version] || "sha1").merge(extra)
  rescue StandardError => e
    { "error" => "#{e.class}: #{e.message}" }
  end
end
$stdout.write(JSON.generate(results))
