// The Kafka sink. Three threads meet here: the aggregator strand produces (format, reserve room,
// hand to librdkafka), the sink's poll thread serves delivery reports and probes the brokers,
// and librdkafka's own threads call the log and error callbacks. They share only atomics, the
// room mutex (block policy) and the state mutex (outage episodes).
#include <mdagg/kafka.hpp>
#include <mdagg/observe.hpp>

#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <pthread.h>
#include <stdexcept>
#include <thread>

namespace mdagg {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

enum Stream { quotes_stream, bars_stream, events_stream, stream_count };
enum DropCause { buffer_full, queue_full, produce_error, closed, cause_count };

// librdkafka's own queue bound sits well above ours, so ours is the one that drops (counted
// exactly against max_buffer_bytes) and librdkafka's only backs it up.
constexpr int max_librdkafka_messages = 2'147'483'647;
// Every probe a metadata request: quick on healthy brokers, bounded when none answers.
constexpr auto probe_every_up = std::chrono::seconds(5);
constexpr auto probe_every_down = std::chrono::seconds(1);
constexpr int probe_timeout_ms = 500;
// Delivery reports come one per partition batch: with a short linger and many partitions that
// is thousands of wake-ups a second for a record or two each (bench/kafka_bench.sh: 3,000/s at
// 10,000 records/s, linger 5 ms, 38 partitions). After a turn that served some, the next ones
// gather this long, a small share of linger + a round trip.
constexpr auto report_gather = milliseconds(1);
// The drain keeps this much of its time (at most a quarter of it) to purge and count.
constexpr auto purge_reserve = milliseconds(100);

std::int64_t wall_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

int ms_until(Clock::time_point t) {
    const auto left = std::chrono::duration_cast<milliseconds>(t - Clock::now()).count();
    return static_cast<int>(std::clamp<std::int64_t>(left, 0, 1'000'000'000));
}

log::Level level_of_syslog(int level) {
    if (level <= 3) return log::Level::error;
    if (level == 4) return log::Level::warn;
    if (level <= 6) return log::Level::info;
    return log::Level::debug;
}

// Producers whose close gave up waiting for rd_kafka_destroy (KafkaSink::producers_abandoned).
std::atomic<std::uint64_t> abandoned_producers{0};

// A destroy thread and the close waiting for it.
struct DestroyWait {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
};

}  // namespace

struct KafkaSink::Impl : std::enable_shared_from_this<KafkaSink::Impl> {
    Impl(const Universe& u, KafkaSinkOptions o) : universe(u), formatter(u), opt(std::move(o)) {}

    const Universe& universe;
    RecordFormatter formatter;
    const KafkaSinkOptions opt;
    rd_kafka_t* rk = nullptr;
    std::array<rd_kafka_topic_t*, stream_count> topics{};
    std::string line;  // strand only: the record being produced

    std::atomic<bool> intake_closed{false};
    std::atomic<std::uint64_t> produced{0}, queued_records{0}, queued_bytes{0}, overflow_waits{0}, outages{0};
    std::array<std::atomic<std::uint64_t>, stream_count> delivered{}, failed{};
    std::array<std::atomic<std::uint64_t>, cause_count> dropped{};
    LatencyHistogram latency;

    // Block policy: the producer waits here for the poll thread to free room.
    std::mutex room_mutex;
    std::condition_variable room_cv;
    std::atomic<bool> shedding{false};

    // Outage episodes: the poll thread's probe and librdkafka's error callback both report.
    mutable std::mutex state_mutex;
    std::atomic<bool> connected{false};
    bool probed = false;  // the first probe decides the state at start
    Clock::time_point down_since{}, last_reminder{};
    std::uint64_t dropped_at_outage = 0;

    std::atomic<bool> stop_polling{false};
    std::thread poller;
    log::RateLimited limited{std::chrono::seconds(10)};

    std::uint64_t dropped_total() const {
        std::uint64_t n = 0;
        for (auto& d : dropped) n += d.load(std::memory_order_relaxed);
        return n;
    }

    // ---- producing (aggregator strand) ----

    // Room for `size` more bytes under max_buffer_bytes. Only this thread adds; the poll thread
    // only subtracts, which can only make room, so check-then-add cannot overshoot.
    bool reserve(std::uint64_t size) {
        const auto fits = [&] { return queued_bytes.load() + size <= opt.max_buffer_bytes; };
        if (!fits()) {
            if (opt.overflow != OverflowPolicy::block || shedding.load()) return false;
            overflow_waits.fetch_add(1, std::memory_order_relaxed);
            std::unique_lock lock(room_mutex);
            if (!room_cv.wait_for(lock, opt.overflow_wait, fits)) {
                shedding.store(true);
                return false;
            }
        }
        queued_bytes.fetch_add(size);
        return true;
    }

    void release(std::uint64_t size) {
        const std::uint64_t left = queued_bytes.fetch_sub(size) - size;
        if (opt.overflow != OverflowPolicy::block) return;
        if (shedding.load() && left <= opt.max_buffer_bytes / 2) shedding.store(false);
        std::lock_guard lock(room_mutex);
        room_cv.notify_all();
    }

    // `line` holds the record with its '\n'; the value is the line without it.
    void produce(Stream stream, std::string_view key, std::string_view type, std::string_view source,
                 std::int64_t timestamp_ns) {
        if (intake_closed.load(std::memory_order_relaxed)) {
            dropped[closed].fetch_add(1, std::memory_order_relaxed);
            return;
        }
        const std::size_t value_size = line.empty() ? 0 : line.size() - 1;
        const std::uint64_t size = value_size + key.size();
        if (!reserve(size)) {
            dropped[buffer_full].fetch_add(1, std::memory_order_relaxed);
            return;
        }
        std::array<rd_kafka_vu_t, 8> vu{};
        std::size_t n = 0;
        const auto add = [&](rd_kafka_vtype_t type) -> auto& {
            vu[n].vtype = type;
            return vu[n++].u;
        };
        add(RD_KAFKA_VTYPE_RKT).rkt = topics[stream];
        add(RD_KAFKA_VTYPE_MSGFLAGS).i = RD_KAFKA_MSG_F_COPY;
        add(RD_KAFKA_VTYPE_KEY).mem = {const_cast<char*>(key.data()), key.size()};
        add(RD_KAFKA_VTYPE_VALUE).mem = {line.data(), value_size};
        add(RD_KAFKA_VTYPE_TIMESTAMP).i64 = timestamp_ns / 1'000'000;
        // The delivery report's own timestamp is not the one produced (and has milliseconds
        // only): keep ours, in nanoseconds, for the latency.
        add(RD_KAFKA_VTYPE_OPAQUE).ptr = reinterpret_cast<void*>(static_cast<std::intptr_t>(timestamp_ns));
        add(RD_KAFKA_VTYPE_HEADER).header = {"type", type.data(), static_cast<ssize_t>(type.size())};
        if (!source.empty())
            add(RD_KAFKA_VTYPE_HEADER).header = {"source", source.data(), static_cast<ssize_t>(source.size())};
        queued_records.fetch_add(1);
        rd_kafka_error_t* error = rd_kafka_produceva(rk, vu.data(), n);
        if (!error) {
            produced.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        queued_records.fetch_sub(1);
        release(size);
        const bool full = rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__QUEUE_FULL;
        dropped[full ? queue_full : produce_error].fetch_add(1, std::memory_order_relaxed);
        if (auto suppressed = limited.admit(log::Level::warn, "kafka produce", "kafka: a record was not accepted"))
            log::warn("kafka: a record was not accepted", {{"error", rd_kafka_error_string(error)},
                                                           {"topic", rd_kafka_topic_name(topics[stream])},
                                                           {"suppressed", *suppressed}});
        rd_kafka_error_destroy(error);
    }

    std::string_view symbol_name(SymbolId id) const {
        return id < universe.symbols.size() ? std::string_view(universe.symbols[id]) : std::string_view();
    }
    std::string_view source_name(SourceId id) const {
        return id < universe.sources.size() ? std::string_view(universe.sources[id]) : std::string_view();
    }

    // ---- delivery reports (poll thread) ----

    static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
        static_cast<Impl*>(opaque)->delivered_one(*m);
    }

    void delivered_one(const rd_kafka_message_t& m) {
        Stream stream = quotes_stream;
        for (int s = 0; s < stream_count; ++s)
            if (m.rkt == topics[s]) stream = static_cast<Stream>(s);
        if (m.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            delivered[stream].fetch_add(1, std::memory_order_relaxed);
            const auto received_ns = static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(m._private));
            if (received_ns > 0)
                latency.record(std::chrono::nanoseconds(std::max<std::int64_t>(0, wall_ns() - received_ns)));
            if (!connected.load(std::memory_order_relaxed)) set_connected(true);
        } else {
            failed[stream].fetch_add(1, std::memory_order_relaxed);
            if (auto suppressed = limited.admit(log::Level::warn, "kafka delivery", "kafka: delivery failed"))
                log::warn("kafka: delivery failed", {{"error", rd_kafka_err2str(m.err)},
                                                     {"topic", rd_kafka_topic_name(m.rkt)},
                                                     {"suppressed", *suppressed}});
        }
        queued_records.fetch_sub(1);
        release(m.len + m.key_len);
    }

    // ---- outages (poll thread, librdkafka's threads) ----

    static void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
        auto* self = static_cast<Impl*>(opaque);
        if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
            self->set_connected(false);
            return;
        }
        // librdkafka's log line said it already; the outage episode is logged above.
        if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__RESOLVE) return;
        if (auto suppressed = self->limited.admit(log::Level::warn, "kafka error", "kafka: client error"))
            log::warn("kafka: client error", {{"error", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))},
                                              {"reason", reason},
                                              {"suppressed", *suppressed}});
    }

    static void on_log(const rd_kafka_t* rk, int level, const char* facility, const char* text) {
        auto* self = static_cast<Impl*>(rd_kafka_opaque(rk));
        const log::Level lv = level_of_syslog(level);
        if (!log::enabled(lv)) return;
        if (auto suppressed = self->limited.admit(lv, facility, "librdkafka"))
            log::write(lv, "librdkafka", {{"facility", facility}, {"message", text}, {"suppressed", *suppressed}});
    }

    nlohmann::json queue_fields() const {
        return {{"brokers", opt.brokers},
                {"queued_records", queued_records.load()},
                {"queued_bytes", queued_bytes.load()},
                {"max_buffer_bytes", opt.max_buffer_bytes}};
    }

    void set_connected(bool up) {
        std::lock_guard lock(state_mutex);
        const bool first = !probed;
        probed = true;
        if (!first && connected.load() == up) return;
        connected.store(up);
        const auto now = Clock::now();
        if (up) {
            nlohmann::json fields = queue_fields();
            if (first) {
                log::info("kafka connected", fields);
                return;
            }
            fields["outage_ms"] = std::chrono::duration<double, std::milli>(now - down_since).count();
            fields["dropped_during_outage"] = dropped_total() - dropped_at_outage;
            log::info("kafka reachable again", fields);
            return;
        }
        outages.fetch_add(1, std::memory_order_relaxed);
        down_since = last_reminder = now;
        dropped_at_outage = dropped_total();
        log::warn(first ? "kafka unreachable at start: records queue up to kafka.max_buffer_bytes, then drop"
                        : "kafka unreachable: records queue up to kafka.max_buffer_bytes, then drop",
                  queue_fields());
    }

    void remind(Clock::time_point now) {
        std::lock_guard lock(state_mutex);
        if (!probed || connected.load() || now - last_reminder < opt.remind_every) return;
        last_reminder = now;
        nlohmann::json fields = queue_fields();
        fields["outage_ms"] = std::chrono::duration<double, std::milli>(now - down_since).count();
        fields["dropped_during_outage"] = dropped_total() - dropped_at_outage;
        log::warn("kafka still unreachable", fields);
    }

    // A metadata request answered by any broker: reachable.
    void probe() {
        const rd_kafka_metadata_t* md = nullptr;
        const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, nullptr, &md, probe_timeout_ms);
        if (md) rd_kafka_metadata_destroy(md);
        set_connected(err == RD_KAFKA_RESP_ERR_NO_ERROR);
    }

    void poll_loop() {
        // Named so that a profile or bench/kafka_bench.sh tells its CPU from the pollers'.
        pthread_setname_np(pthread_self(), "mdagg-kafka-dr");
        auto next_probe = Clock::now();
        while (!stop_polling.load()) {
            if (rd_kafka_poll(rk, 100) > 0) std::this_thread::sleep_for(report_gather);
            const auto now = Clock::now();
            if (now >= next_probe) {
                probe();
                next_probe = Clock::now() + (connected.load() ? probe_every_up : probe_every_down);
            }
            remind(now);
        }
    }

    // ---- set-up ----

    std::string redacted(std::string text) const {
        for (const auto& [key, value] : opt.properties) {
            if (value.size() < 3) continue;
            for (auto at = text.find(value); at != std::string::npos; at = text.find(value, at + 3))
                text.replace(at, value.size(), "***");
        }
        return text;
    }

    void set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
        char error[512] = "";
        if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK)
            throw std::runtime_error("kafka: " + key + ": " + redacted(error));
    }

    rd_kafka_conf_t* make_conf() {
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        try {
            set(conf, "bootstrap.servers", opt.brokers);
            set(conf, "acks", opt.acks);
            set(conf, "enable.idempotence", opt.idempotence ? "true" : "false");
            set(conf, "compression.type", opt.compression);
            set(conf, "linger.ms", std::to_string(std::chrono::duration<double, std::milli>(opt.linger).count()));
            set(conf, "queue.buffering.max.messages", std::to_string(max_librdkafka_messages));
            const std::uint64_t kbytes = std::min<std::uint64_t>(opt.max_buffer_bytes / 1024 * 2 + 1024, 2'097'151);
            set(conf, "queue.buffering.max.kbytes", std::to_string(kbytes));
            // The key's partition is the one Java clients and kcat compute.
            set(conf, "partitioner", "murmur2_random");
            for (const auto& [key, value] : opt.properties) set(conf, key, value);
        } catch (...) {
            rd_kafka_conf_destroy(conf);
            throw;
        }
        rd_kafka_conf_set_opaque(conf, this);
        rd_kafka_conf_set_dr_msg_cb(conf, &Impl::on_delivery);
        rd_kafka_conf_set_error_cb(conf, &Impl::on_error);
        rd_kafka_conf_set_log_cb(conf, &Impl::on_log);
        return conf;
    }

    void open() {
        rd_kafka_conf_t* conf = make_conf();
        char error[512] = "";
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
        if (!rk) {
            rd_kafka_conf_destroy(conf);
            throw std::runtime_error("kafka: cannot create the producer: " + redacted(error));
        }
        const std::string* names[stream_count] = {&opt.quotes_topic, &opt.bars_topic, &opt.events_topic};
        for (int s = 0; s < stream_count; ++s)
            if (!names[s]->empty()) topics[s] = rd_kafka_topic_new(rk, names[s]->c_str(), nullptr);
        poller = std::thread([this] { poll_loop(); });
    }

    KafkaDrainOutcome drain(Clock::time_point deadline);
    bool close(Clock::time_point deadline);
    bool destroy(Clock::time_point deadline);
};

KafkaDrainOutcome KafkaSink::Impl::drain(Clock::time_point deadline) {
    intake_closed.store(true);
    KafkaDrainOutcome out;
    const auto started = Clock::now();
    bool purged = false;
    if (rk) {
        const auto keep = std::min<Clock::duration>(purge_reserve, std::max<Clock::duration>(deadline - started, {}) / 4);
        // rd_kafka_flush skips the linger and serves delivery reports beside the poll thread.
        rd_kafka_flush(rk, ms_until(deadline - keep));
        if (queued_records.load() > 0) {
            // What is left turns into failed delivery reports, so it is counted exactly.
            rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            purged = true;
            while (queued_records.load() > 0 && Clock::now() < deadline) rd_kafka_poll(rk, std::min(ms_until(deadline), 10));
        }
    }
    // Late only when the deadline cut records off: a drain that found nothing left to deliver
    // is in time even past a deadline the in-flight polls used up (the files' rule: their
    // drain is late only when it overruns), one that purged is in time if it counted by then.
    out.in_time = queued_records.load() == 0 && (!purged || Clock::now() <= deadline);
    // The intake is closed, so `produced` is final; reports the poll thread still serves (a
    // purge past the deadline) move records between failed and queued while we read, so
    // undelivered is what was produced and not delivered: one read, no record in two counts.
    for (int s = 0; s < stream_count; ++s) out.delivered += delivered[s].load();
    const std::uint64_t accepted = produced.load();
    out.undelivered = accepted > out.delivered ? accepted - out.delivered : 0;
    nlohmann::json fields{{"delivered", out.delivered},
                          {"undelivered", out.undelivered},
                          {"dropped", dropped_total()},
                          {"in_time", out.in_time},
                          {"drain_ms", std::chrono::duration<double, std::milli>(Clock::now() - started).count()}};
    if (out.in_time && out.undelivered == 0 && dropped_total() == 0)
        log::info("kafka drained", fields);
    else
        log::warn("kafka drained with records lost", fields);
    return out;
}

bool KafkaSink::Impl::close(Clock::time_point deadline) {
    intake_closed.store(true);
    stop_polling.store(true);
    if (poller.joinable()) poller.join();
    if (!rk) return true;
    // Without a drain before, records still queued are given up here, uncounted: the caller
    // chose not to wait for them.
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING);
    for (auto*& topic : topics)
        if (topic) rd_kafka_topic_destroy(std::exchange(topic, nullptr));
    return destroy(deadline);
}

// rd_kafka_destroy joins librdkafka's threads, which may wait on a broker that stopped
// answering mid-request: it has no time limit of its own. Run on a thread waited for until the
// deadline; past it the thread is left running with this Impl (its callbacks' opaque) kept
// alive, logged and counted, so a drain never waits past its budget for it.
bool KafkaSink::Impl::destroy(Clock::time_point deadline) {
    auto wait = std::make_shared<DestroyWait>();
    std::thread destroyer([handle = std::exchange(rk, nullptr), wait, self = shared_from_this()] {
        rd_kafka_destroy(handle);
        std::lock_guard lock(wait->mutex);
        wait->done = true;
        wait->cv.notify_all();
    });
    bool done = false;
    {
        std::unique_lock lock(wait->mutex);
        done = wait->cv.wait_until(lock, deadline, [&] { return wait->done; });
    }
    if (done) {
        destroyer.join();
        return true;
    }
    destroyer.detach();
    const std::uint64_t abandoned = abandoned_producers.fetch_add(1) + 1;
    log::warn("kafka: the producer did not stop by the drain's deadline; left to a thread of its own",
              {{"brokers", opt.brokers}, {"producers_abandoned", abandoned}});
    return false;
}

KafkaSink::KafkaSink(const Universe& universe, KafkaSinkOptions options)
    : impl_(std::make_shared<Impl>(universe, std::move(options))) {}

KafkaSink::~KafkaSink() { close(); }

void KafkaSink::open() { impl_->open(); }

void KafkaSink::on_quote(const Quote& quote) {
    Impl& m = *impl_;
    if (!m.topics[quotes_stream]) return;
    m.line.clear();
    m.formatter.quote_json(m.line, quote);
    m.produce(quotes_stream, m.symbol_name(quote.symbol), "quote", m.source_name(quote.source), quote.receive_time_ns);
}

void KafkaSink::on_bar(const Bar& bar) {
    Impl& m = *impl_;
    if (!m.topics[bars_stream]) return;
    m.line.clear();
    m.formatter.bar_json(m.line, bar);
    m.produce(bars_stream, m.symbol_name(bar.symbol), "bar", {}, bar.end_ns);
}

void KafkaSink::on_stale(const StaleMark& mark) {
    Impl& m = *impl_;
    if (!m.topics[events_stream]) return;
    m.line.clear();
    m.formatter.stale_json(m.line, mark);
    m.produce(events_stream, m.symbol_name(mark.symbol), "stale", m.source_name(mark.source), mark.at_ns);
}

void KafkaSink::stop_intake() { impl_->intake_closed.store(true); }

KafkaDrainOutcome KafkaSink::drain(std::chrono::steady_clock::time_point deadline) { return impl_->drain(deadline); }

bool KafkaSink::close(std::chrono::steady_clock::time_point deadline) { return impl_->close(deadline); }

std::uint64_t KafkaSink::producers_abandoned() noexcept { return abandoned_producers.load(); }

KafkaStats KafkaSink::stats() const {
    const Impl& m = *impl_;
    KafkaStats s;
    KafkaStreamStats* out[stream_count] = {&s.quotes, &s.bars, &s.events};
    for (int k = 0; k < stream_count; ++k) {
        out[k]->delivered = m.delivered[k].load(std::memory_order_relaxed);
        out[k]->failed = m.failed[k].load(std::memory_order_relaxed);
        s.delivered += out[k]->delivered;
        s.failed += out[k]->failed;
    }
    s.produced = m.produced.load(std::memory_order_relaxed);
    s.dropped_buffer_full = m.dropped[buffer_full].load(std::memory_order_relaxed);
    s.dropped_queue_full = m.dropped[queue_full].load(std::memory_order_relaxed);
    s.dropped_produce_error = m.dropped[produce_error].load(std::memory_order_relaxed);
    s.dropped_closed = m.dropped[closed].load(std::memory_order_relaxed);
    s.queued_records = m.queued_records.load(std::memory_order_relaxed);
    s.queued_bytes = m.queued_bytes.load(std::memory_order_relaxed);
    s.overflow_waits = m.overflow_waits.load(std::memory_order_relaxed);
    s.connected = m.connected.load(std::memory_order_relaxed);
    s.outages = m.outages.load(std::memory_order_relaxed);
    s.delivery_latency = m.latency.snapshot();
    return s;
}

}  // namespace mdagg
