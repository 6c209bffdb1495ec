// What SIGHUP does with each config key: one row per key of the schema, so a key added to the
// parser without a decision here fails ReloadPolicy.EverySchemaKeyHasExactlyOneRule
// (tests/unit/config_test.cpp).
#include <mdagg/config.hpp>

#include <algorithm>
#include <tuple>

namespace mdagg {

namespace {

constexpr auto live = ReloadPolicy::live;
constexpr auto restart = ReloadPolicy::restart;

// A member of Config compared with == and, when live, adopted by copy.
#define MDAGG_LIVE(key, member)                                                               \
    ReloadRule {                                                                              \
        key, live, [](const Config& a, const Config& b) { return !(a.member == b.member); }, \
            [](Config& to, const Config& from) { to.member = from.member; }                   \
    }
#define MDAGG_RESTART(key, member) \
    ReloadRule { key, restart, [](const Config& a, const Config& b) { return !(a.member == b.member); }, nullptr }

// A host keeps its guard (bucket, pauses, breaker) for the life of the process, keyed by host
// and port: the limits of an entry both configs have cannot change. A new entry (another key)
// gets a guard of its own when a source first uses it.
template <class Field>
bool host_entries_differ(const Config& a, const Config& b, Field field) {
    for (const HostConfig& now : b.hosts)
        for (const HostConfig& was : a.hosts)
            if (was.host == now.host && was.port == now.port && !(field(was) == field(now))) return true;
    return false;
}
#define MDAGG_HOST(key, expr)                                                                        \
    ReloadRule {                                                                                     \
        key, restart,                                                                                \
            [](const Config& a, const Config& b) {                                                   \
                return host_entries_differ(a, b, [](const HostConfig& h) { return expr; });         \
            },                                                                                       \
            nullptr                                                                                  \
    }

bool new_host_entry(const Config& a, const Config& b) {
    for (const HostConfig& now : b.hosts)
        if (std::none_of(a.hosts.begin(), a.hosts.end(),
                         [&](const HostConfig& was) { return was.host == now.host && was.port == now.port; }))
            return true;
    return false;
}

void adopt_new_host_entries(Config& to, const Config& from) {
    for (const HostConfig& now : from.hosts)
        if (std::none_of(to.hosts.begin(), to.hosts.end(),
                         [&](const HostConfig& was) { return was.host == now.host && was.port == now.port; }))
            to.hosts.push_back(now);
}

// The daemon applies the source list as a difference of pollers (a source whose settings
// changed restarts its pollers) and reports that in pollers_added/removed/restarted.
void adopt_sources(Config& to, const Config& from) { to.sources = from.sources; }
#define MDAGG_SOURCE(key) ReloadRule { key, live, nullptr, adopt_sources }

const std::vector<ReloadRule> rules = {
    MDAGG_RESTART("runtime.threads", runtime.threads),

    // Resolved values (after SHARD_INDEX, SHARD_COUNT and "auto"); the symbol lists of the
    // sources are already this shard's, so the poller difference applies a new shard.
    MDAGG_LIVE("sharding.index", sharding.index),
    MDAGG_LIVE("sharding.count", sharding.count),

    // The drain budgets arm at the signal; changing them under a running drain is not worth it.
    MDAGG_RESTART("shutdown.grace", shutdown.grace),
    MDAGG_RESTART("shutdown.interrupt_grace", shutdown.interrupt_grace),

    MDAGG_LIVE("log.level", log.level),
    MDAGG_LIVE("log.summary_every", log.summary_every),

    MDAGG_RESTART("output.dir", output.dir),
    MDAGG_RESTART("output.flush_every", output.flush_every),
    MDAGG_RESTART("output.quotes", output.quotes),
    // Bars in progress are cut at the old interval's boundaries.
    MDAGG_RESTART("output.bar_interval", output.bar_interval),
    MDAGG_LIVE("output.max_buffer_bytes", output.max_buffer_bytes),
    MDAGG_LIVE("output.overflow", output.overflow),
    MDAGG_LIVE("output.overflow_wait", output.overflow_wait),
    // Records already queued are formatted; switching would mix formats in one segment.
    MDAGG_RESTART("output.format.quotes", output.quotes_format),
    MDAGG_RESTART("output.format.bars", output.bars_format),
    MDAGG_LIVE("output.rotate.max_bytes", output.rotate_max_bytes),
    MDAGG_LIVE("output.rotate.max_age", output.rotate_max_age),
    MDAGG_LIVE("output.retention.max_files", output.retention_max_files),
    MDAGG_LIVE("output.retention.max_bytes", output.retention_max_bytes),
    MDAGG_LIVE("output.compression", output.compression),

    // The server is bound once; `admin:` appearing or going away is a change of listen.
    ReloadRule{"admin.listen", restart,
               [](const Config& a, const Config& b) {
                   return std::tie(a.admin.enabled, a.admin.host, a.admin.port) !=
                          std::tie(b.admin.enabled, b.admin.host, b.admin.port);
               },
               nullptr},
    // Checked once, against the listen address, before anything starts.
    MDAGG_RESTART("admin.allow_unauthenticated", admin.allow_unauthenticated),
    MDAGG_LIVE("admin.token_env", admin.token_env),
    MDAGG_LIVE("admin.token_file", admin.token_file),
    MDAGG_LIVE("admin.stall_after", admin.stall_after),
    MDAGG_LIVE("admin.symbol_metrics", admin.symbol_metrics),

    // The producer is built once; `kafka:` appearing or going away changes kafka.brokers. A
    // property's { env } / { file } is compared as written: a rotated secret needs a restart.
    MDAGG_RESTART("kafka.brokers", kafka.brokers),
    MDAGG_RESTART("kafka.topics.quotes", kafka.topics.quotes),
    MDAGG_RESTART("kafka.topics.bars", kafka.topics.bars),
    MDAGG_RESTART("kafka.topics.events", kafka.topics.events),
    MDAGG_RESTART("kafka.acks", kafka.acks),
    MDAGG_RESTART("kafka.idempotence", kafka.idempotence),
    MDAGG_RESTART("kafka.compression", kafka.compression),
    MDAGG_RESTART("kafka.linger", kafka.linger),
    MDAGG_RESTART("kafka.max_buffer_bytes", kafka.max_buffer_bytes),
    MDAGG_RESTART("kafka.overflow", kafka.overflow),
    MDAGG_RESTART("kafka.overflow_wait", kafka.overflow_wait),
    MDAGG_RESTART("kafka.properties", kafka.properties),

    MDAGG_SOURCE("sources[].name"),
    MDAGG_SOURCE("sources[].url"),
    MDAGG_SOURCE("sources[].interval"),
    MDAGG_SOURCE("sources[].timeout"),
    MDAGG_SOURCE("sources[].connect_timeout"),
    MDAGG_SOURCE("sources[].max_in_flight"),
    MDAGG_SOURCE("sources[].max_body_bytes"),
    MDAGG_SOURCE("sources[].cost"),
    MDAGG_SOURCE("sources[].stale_after"),
    MDAGG_SOURCE("sources[].symbols"),
    MDAGG_SOURCE("sources[].symbols.prefix"),
    MDAGG_SOURCE("sources[].symbols.count"),
    MDAGG_SOURCE("sources[].symbols.start"),
    MDAGG_SOURCE("sources[].symbols[].name"),
    MDAGG_SOURCE("sources[].symbols[].tags"),
    // A symbol whose venue name changed restarts its own poller only (lifecycle's reload plan).
    MDAGG_SOURCE("sources[].symbols[].venue"),
    MDAGG_SOURCE("sources[].symbol_map"),
    MDAGG_SOURCE("sources[].tags"),
    MDAGG_SOURCE("sources[].preset"),
    MDAGG_SOURCE("sources[].success.pointer"),
    MDAGG_SOURCE("sources[].success.equals"),
    MDAGG_SOURCE("sources[].success.empty"),
    MDAGG_SOURCE("sources[].fields.symbol"),
    MDAGG_SOURCE("sources[].fields.bid"),
    MDAGG_SOURCE("sources[].fields.ask"),
    MDAGG_SOURCE("sources[].fields.bid_size"),
    MDAGG_SOURCE("sources[].fields.ask_size"),
    MDAGG_SOURCE("sources[].fields.exchange_time.pointer"),
    MDAGG_SOURCE("sources[].fields.exchange_time.unit"),
    MDAGG_SOURCE("sources[].fields.seq"),
    // Secrets are read again on every reload: a rotated one restarts the source's pollers.
    MDAGG_SOURCE("sources[].headers"),
    MDAGG_SOURCE("sources[].accept_encoding"),
    // A changed block restarts the source's pollers on a new SSL context (new connections).
    MDAGG_SOURCE("sources[].batch.items"),
    MDAGG_SOURCE("sources[].batch.symbol"),
    MDAGG_SOURCE("sources[].batch.size"),
    MDAGG_SOURCE("sources[].batch.join"),
    MDAGG_SOURCE("sources[].batch.format"),
    MDAGG_SOURCE("sources[].tls.verify"),
    MDAGG_SOURCE("sources[].tls.ca_file"),
    MDAGG_SOURCE("sources[].tls.server_name"),
    MDAGG_SOURCE("sources[].tls.client_cert"),
    MDAGG_SOURCE("sources[].tls.client_key"),
    MDAGG_SOURCE("sources[].tls.min_version"),
    // Mirrors, hedging and priorities: the source's pollers restart with them.
    MDAGG_SOURCE("sources[].mirrors"),
    MDAGG_SOURCE("sources[].hedge.after"),
    MDAGG_SOURCE("sources[].hedge.max_extra"),
    MDAGG_SOURCE("sources[].priority"),
    MDAGG_SOURCE("sources[].priority.default"),
    MDAGG_SOURCE("sources[].priority.tags"),
    MDAGG_SOURCE("sources[].symbols[].priority"),

    ReloadRule{"hosts[].host", live, new_host_entry, adopt_new_host_entries},
    MDAGG_HOST("hosts[].rate", h.rate),
    MDAGG_HOST("hosts[].burst", h.burst),
    MDAGG_HOST("hosts[].rate_limit_pause", h.rate_limit_pause),
    MDAGG_HOST("hosts[].ban_pause", h.ban_pause),
    MDAGG_HOST("hosts[].max_pause", h.max_pause),
    // A threshold derived from the poller count is no change of its own.
    MDAGG_HOST("hosts[].breaker.failures",
               std::pair(h.breaker.failures_auto, h.breaker.failures_auto ? 0u : h.breaker.failures)),
    MDAGG_HOST("hosts[].breaker.cooldown", h.breaker.cooldown),
    MDAGG_HOST("hosts[].breaker.max_cooldown", h.breaker.max_cooldown),
    MDAGG_HOST("hosts[].usage.header", h.usage ? std::optional(h.usage->header) : std::nullopt),
    MDAGG_HOST("hosts[].usage.limit", h.usage ? std::optional(h.usage->limit) : std::nullopt),
    MDAGG_HOST("hosts[].usage.slow_at", h.usage ? std::optional(h.usage->slow_at) : std::nullopt),
};

#undef MDAGG_LIVE
#undef MDAGG_RESTART
#undef MDAGG_HOST
#undef MDAGG_SOURCE

}  // namespace

const std::vector<ReloadRule>& reload_rules() { return rules; }

ReloadDiff reload_diff(const Config& running, const Config& loaded) {
    ReloadDiff diff;
    for (const ReloadRule& rule : rules) {
        if (!rule.differs || !rule.differs(running, loaded)) continue;
        (rule.policy == live ? diff.applied : diff.not_applied).emplace_back(rule.key);
    }
    return diff;
}

void adopt_live_keys(Config& running, const Config& loaded) {
    // Several keys share one adopter (every source key copies the source list): once each.
    std::vector<void (*)(Config&, const Config&)> done;
    for (const ReloadRule& rule : rules) {
        if (rule.policy != live || !rule.adopt) continue;
        if (std::find(done.begin(), done.end(), rule.adopt) != done.end()) continue;
        done.push_back(rule.adopt);
        rule.adopt(running, loaded);
    }
}

}  // namespace mdagg
