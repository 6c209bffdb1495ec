// Secrets in the config, read one way everywhere: `{ env: NAME }` and `{ file: PATH }` values
// (kafka.properties, sources[].headers) and "{env:NAME}" / "{file:PATH}" in a URL. A message
// names the key and the variable or the path, never the value.
#include "detail.hpp"

#include <cstdlib>

namespace mdagg::config_detail {

bool is_env_name(std::string_view name) noexcept {
    if (name.empty()) return false;
    for (char ch : name)
        if (!is_ascii_alnum(ch) && ch != '_') return false;
    return true;
}

SecretRef read_secret_ref(const Value& v) {
    if (v.is_scalar()) return SecretRef{SecretRef::From::literal, read_string(v)};
    if (!v.is_map()) v.fail("expected a value, { env: NAME } or { file: PATH }, got " + v.describe());
    constexpr std::string_view keys[] = {"env", "file"};
    const std::vector<Entry> entries = read_entries(v, keys);
    if (entries.size() != 1) v.fail("expected exactly one of { env: NAME } or { file: PATH }");
    const Value& inner = entries[0].value;
    SecretRef ref{entries[0].key == 0 ? SecretRef::From::env : SecretRef::From::file, read_nonempty_string(inner)};
    if (ref.from == SecretRef::From::env)
        for (char ch : ref.text)
            if (!is_ascii_alnum(ch) && ch != '_')
                inner.fail("invalid character " + describe_char(ch) + " in an environment variable name");
    return ref;
}

std::string secret_origin(const SecretRef& ref) {
    switch (ref.from) {
        case SecretRef::From::env: return "environment variable " + ref.text;
        case SecretRef::From::file: return "file \"" + ref.text + "\"";
        case SecretRef::From::literal: break;
    }
    return "the config file";
}

std::string read_secret(const SecretRef& ref) {
    switch (ref.from) {
        case SecretRef::From::literal: return ref.text;
        case SecretRef::From::env: {
            const char* value = std::getenv(ref.text.c_str());
            if (!value) throw ConfigError("environment variable " + ref.text + " is not set");
            return value;
        }
        case SecretRef::From::file: return read_secret_file(ref.text, "file");
    }
    return {};
}

}  // namespace mdagg::config_detail
