// The `kafka:` section. Properties go to librdkafka as they are, so librdkafka's own
// rd_kafka_conf_set judges them: at load time for keys and literal values, at start-up for
// values read from secrets. A secret's text never enters a message.
#include "detail.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

namespace mdagg {

namespace config_detail {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view acks_choices[] = {"all", "1", "0"};                            // KafkaAcks order
constexpr std::string_view compression_choices[] = {"none", "gzip", "snappy", "lz4", "zstd"};  // KafkaCompression
constexpr std::string_view overflow_choices[] = {"drop_newest", "block"};
constexpr std::uint64_t min_buffer_bytes = 4096;
// librdkafka counts its own bound in KiB in an int.
constexpr std::uint64_t max_buffer_bytes = std::uint64_t{64} * 1024 * 1024 * 1024;

// Set from the dedicated keys; a second spelling in `properties` would silently fight them.
constexpr std::pair<std::string_view, std::string_view> reserved_properties[] = {
    {"bootstrap.servers", "kafka.brokers"},
    {"metadata.broker.list", "kafka.brokers"},
    {"acks", "kafka.acks"},
    {"request.required.acks", "kafka.acks"},
    {"enable.idempotence", "kafka.idempotence"},
    {"compression.type", "kafka.compression"},
    {"compression.codec", "kafka.compression"},
    {"linger.ms", "kafka.linger"},
    {"queue.buffering.max.ms", "kafka.linger"},
    {"queue.buffering.max.kbytes", "kafka.max_buffer_bytes"},
    {"queue.buffering.max.messages", "kafka.max_buffer_bytes"},
};

using ConfPtr = std::unique_ptr<rd_kafka_conf_t, void (*)(rd_kafka_conf_t*)>;
ConfPtr new_conf() { return ConfPtr(rd_kafka_conf_new(), &rd_kafka_conf_destroy); }

// Kafka's legal topic names: 1-249 of [a-zA-Z0-9._-].
std::string read_topic(const Value& v) {
    std::string topic = read_nonempty_string(v);
    if (topic.size() > 249) v.fail("a Kafka topic name has at most 249 characters");
    for (char c : topic)
        if (!is_ascii_alnum(c) && c != '.' && c != '_' && c != '-')
            v.fail("invalid character " + describe_char(c) + " in a Kafka topic name; allowed: A-Z a-z 0-9 . _ -");
    return topic;
}

constexpr Key<Config> topic_keys[] = {
    {"quotes", [](const Value& v, Config& c) { c.kafka.topics.quotes = read_topic(v); }},
    {"bars", [](const Value& v, Config& c) { c.kafka.topics.bars = read_topic(v); }},
    {"events", [](const Value& v, Config& c) { c.kafka.topics.events = read_topic(v); }},
};

// Unknown keys fail whatever the value; a secret's value is judged at start-up.
void check_property(const Value& v, const std::string& key, const SecretRef& value) {
    const auto reserved = std::find_if(std::begin(reserved_properties), std::end(reserved_properties),
                                       [&](const auto& r) { return r.first == key; });
    if (reserved != std::end(reserved_properties))
        v.fail("set by " + std::string(reserved->second) + ", not in kafka.properties");
    const ConfPtr conf = new_conf();
    char error[512] = "";
    const std::string probe = value.from == SecretRef::From::literal ? value.text : std::string();
    const rd_kafka_conf_res_t res = rd_kafka_conf_set(conf.get(), key.c_str(), probe.c_str(), error, sizeof error);
    if (res == RD_KAFKA_CONF_UNKNOWN) v.fail("unknown librdkafka property \"" + key + "\"");
    if (res != RD_KAFKA_CONF_OK && value.from == SecretRef::From::literal) v.fail(error);
}

void read_properties(const Value& v, Config& c) {
    if (v.is_null()) return;
    if (!v.is_map()) v.fail("expected a mapping of librdkafka properties, got " + v.describe());
    for (const auto& item : v.node()) {
        const YAML::Node& key_node = item.first;
        const Value value(v.file(), item.second, v.child_path(key_node.IsScalar() ? key_node.Scalar() : "?"),
                          key_node.Mark());
        if (!key_node.IsScalar() || key_node.Scalar().empty()) value.fail("expected a property name");
        const std::string key = key_node.Scalar();
        const bool duplicate = std::any_of(c.kafka.properties.begin(), c.kafka.properties.end(),
                                           [&](const KafkaConfig::Property& p) { return p.key == key; });
        if (duplicate) value.fail("duplicate property \"" + key + "\"");
        SecretRef ref = read_secret_ref(value);
        check_property(value, key, ref);
        const YAML::Mark mark = value.mark();
        c.kafka.properties.push_back({key, std::move(ref), mark.line + 1, mark.column + 1});
    }
}

constexpr Key<Config> kafka_keys[] = {
    {"brokers",
     [](const Value& v, Config& c) {
         c.kafka.brokers = read_nonempty_string(v);
         for (char ch : c.kafka.brokers)
             if (ch == ' ' || ch == '\t') v.fail("expected \"host:port,host:port\" without spaces");
     },
     true},
    {"topics", [](const Value& v, Config& c) { read_map(v, topic_keys, c); }, true},
    {"acks", [](const Value& v, Config& c) { c.kafka.acks = static_cast<KafkaAcks>(read_choice(v, acks_choices)); }},
    {"idempotence", [](const Value& v, Config& c) { c.kafka.idempotence = read_bool(v); }},
    {"compression",
     [](const Value& v, Config& c) {
         c.kafka.compression = static_cast<KafkaCompression>(read_choice(v, compression_choices));
     }},
    {"linger",
     [](const Value& v, Config& c) {
         c.kafka.linger = v.is_plain() && v.node().Scalar() == "0" ? Duration::zero() : read_duration(v, 10s);
     }},
    {"max_buffer_bytes",
     [](const Value& v, Config& c) { c.kafka.max_buffer_bytes = read_uint(v, min_buffer_bytes, max_buffer_bytes); }},
    {"overflow",
     [](const Value& v, Config& c) {
         c.kafka.overflow = read_choice(v, overflow_choices) == 0 ? OverflowPolicy::drop_newest : OverflowPolicy::block;
     }},
    // It stalls the aggregator (and, with one thread, the pollers): keep it short.
    {"overflow_wait", [](const Value& v, Config& c) { c.kafka.overflow_wait = read_duration(v, 1s); }},
    {"properties", read_properties},
};

}  // namespace

void read_kafka(const Value& v, Config& c) {
    c.kafka.enabled = true;
    read_map(v, kafka_keys, c);
    const auto& t = c.kafka.topics;
    if (t.quotes.empty() && t.bars.empty() && t.events.empty())
        v.fail_child("topics", "name at least one of quotes, bars, events");
    // librdkafka refuses to start otherwise; say it at load time, at the key.
    if (c.kafka.idempotence && c.kafka.acks != KafkaAcks::all)
        v.fail_child("acks", "must be all when idempotence is true (librdkafka's idempotent producer)");
}

std::vector<std::string> kafka_key_names() {
    std::vector<std::string> out;
    for (const auto& k : kafka_keys)
        if (k.name != "topics") out.emplace_back(k.name);
    for (const auto& k : topic_keys) out.push_back("topics." + std::string(k.name));
    return out;
}

}  // namespace config_detail

std::vector<std::pair<std::string, std::string>> kafka_properties(const Config& config) {
    std::vector<std::pair<std::string, std::string>> out;
    const config_detail::ConfPtr conf = config_detail::new_conf();
    for (const KafkaConfig::Property& p : config.kafka.properties) {
        const std::string where = config.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column) +
                                  ": kafka.properties." + p.key + ": ";
        std::string value;
        try {
            value = config_detail::read_secret(p.value);
        } catch (const ConfigError& e) {
            throw ConfigError(where + e.what());
        }
        char error[512] = "";
        if (rd_kafka_conf_set(conf.get(), p.key.c_str(), value.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK) {
            // librdkafka quotes the value in some messages: never a secret's.
            if (p.value.from != SecretRef::From::literal)
                throw ConfigError(where + "librdkafka refuses the value read from " +
                                  (p.value.from == SecretRef::From::env ? "environment variable " : "file ") +
                                  p.value.text + " (not shown)");
            throw ConfigError(where + error);
        }
        out.emplace_back(p.key, std::move(value));
    }
    return out;
}

}  // namespace mdagg
