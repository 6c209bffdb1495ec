// Sharding across replicas: the "sharding" section, its environment overrides and the symbol
// filter. The hash is part of the deployment contract (replicas of different versions must
// agree on it during a rolling update), so it is FNV-1a (common.hpp), spelled out, rather than
// std::hash, whose values may change between library versions.
#include "detail.hpp"

#include <charconv>
#include <cstdlib>
#include <unistd.h>
#include <unordered_set>

namespace mdagg {

namespace {

using namespace config_detail;

// More replicas than this is a typo, not a deployment.
constexpr std::uint64_t max_shards = 100'000;

struct ShardingDraft {
    Config* config;
    std::optional<Value> index;
};

void read_index(const Value& v, ShardingDraft& d) {
    if (v.is_scalar() && v.node().Scalar() == "auto") {
        d.config->sharding.index_from_hostname = true;
        return;
    }
    const bool numeric =
        v.is_plain() && v.node().Scalar().find_first_not_of("+-0123456789") == std::string::npos;
    if (!numeric)
        v.fail(std::string("expected a shard index (0, 1, ...) or \"auto\"") +
               (v.is_scalar() ? ", got " + v.describe() : ""));
    d.config->sharding.index = static_cast<std::uint32_t>(read_uint(v, 0, max_shards - 1));
    d.config->sharding.index_from_hostname = false;
    d.index = v;
}

constexpr Key<ShardingDraft> sharding_keys[] = {
    {"index", read_index},
    {"count",
     [](const Value& v, ShardingDraft& d) {
         d.config->sharding.count = static_cast<std::uint32_t>(read_uint(v, 1, max_shards));
     }},
};

// A non-negative decimal without sign, spaces or leading zeros, as Kubernetes renders an
// ordinal; nullopt otherwise or when it does not fit.
std::optional<std::uint64_t> parse_decimal(std::string_view text) {
    if (text.empty() || (text.size() > 1 && text[0] == '0')) return std::nullopt;
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::string quote(std::string_view text) { return '"' + std::string(text) + '"'; }

// The trailing "-<ordinal>" of a StatefulSet pod's host name ("mdagg-2" -> 2).
std::uint64_t ordinal_from_hostname(const std::string& hostname, std::string_view because) {
    const auto dash = hostname.rfind('-');
    const auto ordinal =
        dash == std::string::npos ? std::nullopt : parse_decimal(std::string_view(hostname).substr(dash + 1));
    if (!ordinal)
        throw ConfigError("sharding: " + std::string(because) + " but the host name " + quote(hostname) +
                          " does not end in -<ordinal> as a StatefulSet pod's does (mdagg-0, mdagg-1, ...)");
    return *ordinal;
}

}  // namespace

namespace config_detail {

void read_sharding(const Value& v, Config& c) {
    ShardingDraft d{&c, std::nullopt};
    read_map(v, sharding_keys, d);
    if (d.index && c.sharding.index >= c.sharding.count)
        d.index->fail("must be less than sharding.count (" + std::to_string(c.sharding.count) + ")");
}

std::vector<std::string_view> sharding_key_names() {
    std::vector<std::string_view> names;
    for (const auto& k : sharding_keys) names.push_back(k.name);
    return names;
}

}  // namespace config_detail

std::uint32_t shard_of(std::string_view symbol, std::uint32_t shard_count) noexcept {
    return shard_count <= 1 ? 0 : static_cast<std::uint32_t>(fnv1a_64(symbol) % shard_count);
}

ShardingEnv ShardingEnv::from_process() {
    ShardingEnv env;
    if (const char* v = std::getenv("SHARD_INDEX")) env.index = v;
    if (const char* v = std::getenv("SHARD_COUNT")) env.count = v;
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) env.hostname = host;
    return env;
}

ShardingResult apply_sharding(Config& config, const ShardingEnv& env) {
    auto& sharding = config.sharding;
    // Where each value came from, for messages.
    std::string count_from = "sharding.count in " + config.file + ", 1 when absent";
    std::string index_from = "sharding.index in " + config.file;

    if (env.count) {
        const auto count = parse_decimal(*env.count);
        if (!count || *count < 1 || *count > max_shards)
            throw ConfigError("SHARD_COUNT=" + quote(*env.count) + ": expected a shard count from 1 to " +
                              std::to_string(max_shards));
        sharding.count = static_cast<std::uint32_t>(*count);
        count_from = "SHARD_COUNT";
    }
    if (env.index) {
        if (*env.index == "auto") {
            sharding.index_from_hostname = true;
        } else {
            const auto index = parse_decimal(*env.index);
            if (!index || *index >= max_shards)
                throw ConfigError("SHARD_INDEX=" + quote(*env.index) +
                                  ": expected a shard index (0, 1, ...) or \"auto\"");
            sharding.index = static_cast<std::uint32_t>(*index);
            sharding.index_from_hostname = false;
            index_from = "SHARD_INDEX";
        }
    }
    std::uint64_t index = sharding.index;
    if (sharding.index_from_hostname) {
        index_from = "the ordinal of host name " + quote(env.hostname);
        index = ordinal_from_hostname(
            env.hostname, env.index ? "SHARD_INDEX is \"auto\"" : "sharding.index is \"auto\"");
    }
    // The likeliest cause: a StatefulSet scaled up without raising the shard count. Failing
    // keeps the extra pod visibly unready instead of polling another shard's symbols twice.
    if (index >= sharding.count)
        throw ConfigError("sharding: index " + std::to_string(index) + " (from " + index_from +
                          ") must be less than the shard count " + std::to_string(sharding.count) +
                          " (from " + count_from + ")");
    sharding.index = static_cast<std::uint32_t>(index);
    sharding.index_from_hostname = false;

    ShardingResult result;
    std::unordered_set<std::string_view> seen;
    for (auto& source : config.sources)
        for (auto& symbol : source.symbols)
            if (seen.insert(symbol).second && shard_of(symbol, sharding.count) == sharding.index)
                ++result.symbols_kept;
    result.symbols_total = seen.size();
    if (sharding.count == 1) {
        for (auto& source : config.sources) result.pollers_kept += source.symbols.size();
        return result;
    }
    for (auto& source : config.sources) {
        std::erase_if(source.symbols, [&](const std::string& symbol) {
            return shard_of(symbol, sharding.count) != sharding.index;
        });
        result.pollers_kept += source.symbols.size();
    }
    set_auto_breaker_thresholds(config);  // a whole round of this replica's pollers
    return result;
}

}  // namespace mdagg
