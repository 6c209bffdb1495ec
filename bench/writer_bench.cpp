// Drives FileSink the way the daemon does (one producer thread standing in for the aggregator
// strand, a flush every flush_every) and prints what it sustains and what it costs.
//   mdagg-writer-bench DIR MODE SECONDS [RATE] [FORMAT] [COMPRESSION]
//   MODE: max (as fast as the writer keeps up; block policy) or paced (RATE quotes/s)
#include <mdagg/observe.hpp>
#include <mdagg/sink.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <sys/resource.h>

using namespace mdagg;
using namespace std::chrono;

namespace {

double cpu_seconds(int who) {
    rusage ru{};
    ::getrusage(who, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s DIR max|paced SECONDS [RATE] [jsonl|csv] [none|gzip|zstd]\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    const bool paced = std::string(argv[2]) == "paced";
    const double seconds = std::atof(argv[3]);
    const double rate = argc > 4 ? std::atof(argv[4]) : 40000;
    const std::string format = argc > 5 ? argv[5] : "jsonl";
    const std::string compression = argc > 6 ? argv[6] : "none";

    log::set_level(log::Level::warn);  // one "segment closed" line per rotation is noise here
    Universe universe;
    universe.sources = {"sim"};
    for (int i = 0; i < 2000; ++i) universe.symbols.push_back("STOCK_" + std::to_string(i));

    SinkOptions o;
    o.dir = dir;
    o.overflow = paced ? OverflowPolicy::drop_oldest : OverflowPolicy::block;
    o.overflow_wait = 1s;
    o.rotate_bytes = 64 * 1024 * 1024;
    o.quotes_format = o.bars_format = format == "csv" ? RecordFormat::csv : RecordFormat::jsonl;
    o.compression = compression == "gzip" ? Compression::gzip
                    : compression == "zstd" ? Compression::zstd
                                            : Compression::none;
    FileSink sink(universe, o);
    sink.open();

    Quote q;
    q.bid = *Decimal::parse("101.25");
    q.ask = *Decimal::parse("101.26");
    q.bid_size = *Decimal::parse("12.50");
    q.ask_size = *Decimal::parse("8.00");
    q.has_bid_size = q.has_ask_size = true;

    const double process_cpu0 = cpu_seconds(RUSAGE_SELF);
    const double producer_cpu0 = cpu_seconds(RUSAGE_THREAD);
    const auto t0 = steady_clock::now();
    const auto end = t0 + duration_cast<steady_clock::duration>(duration<double>(seconds));
    auto next_flush = t0 + 1s;
    std::uint64_t produced = 0;
    const auto batch = static_cast<std::uint64_t>(paced ? rate / 1000 : 1000);  // per ms when paced
    auto next_batch = t0;
    for (auto now = t0; now < end; now = steady_clock::now()) {
        for (std::uint64_t i = 0; i < batch; ++i) {
            q.symbol = static_cast<SymbolId>(produced % 2000);
            q.seq = static_cast<std::int64_t>(produced);
            q.receive_time_ns = q.exchange_time_ns =
                duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
            sink.on_quote(q);
            ++produced;
        }
        if (now >= next_flush) {
            sink.flush();
            next_flush += 1s;
        }
        if (paced) {
            next_batch += 1ms;
            std::this_thread::sleep_until(next_batch);
        }
    }
    const double producer_cpu = cpu_seconds(RUSAGE_THREAD) - producer_cpu0;
    // With compression, wait for the closed segments to be compressed: its cost belongs here.
    const auto compress_from = steady_clock::now();
    if (o.compression != Compression::none) {
        sink.flush();
        while (sink.stats().segments_compressed < sink.stats().segments_closed &&
               steady_clock::now() < compress_from + 300s)
            std::this_thread::sleep_for(10ms);
    }
    const double compress_wait = duration<double>(steady_clock::now() - compress_from).count();
    const bool closed = sink.close(steady_clock::now() + 120s);
    const double wall = duration<double>(steady_clock::now() - t0).count();
    const double process_cpu = cpu_seconds(RUSAGE_SELF) - process_cpu0;
    const SinkStats s = sink.stats();
    const double written = static_cast<double>(s.records_written);
    std::printf(
        "{\"mode\":\"%s\",\"format\":\"%s\",\"compression\":\"%s\",\"closed\":%s,\"seconds\":%.2f,"
        "\"produced\":%llu,\"written\":%llu,\"dropped\":%llu,\"records_per_s\":%.0f,\"bytes_per_s\":%.0f,"
        "\"bytes_per_record\":%.1f,\"producer_cpu_us_per_record\":%.3f,\"writer_cpu_us_per_record\":%.3f,"
        "\"flush_latency_max_ms\":%.2f,\"segments_closed\":%llu,\"segments_compressed\":%llu,"
        "\"compress_wait_s\":%.2f}\n",
        paced ? "paced" : "max", format.c_str(), compression.c_str(), closed ? "true" : "false", wall,
        static_cast<unsigned long long>(produced), static_cast<unsigned long long>(s.records_written),
        static_cast<unsigned long long>(s.records_dropped), written / wall,
        static_cast<double>(s.bytes_written) / wall, written > 0 ? static_cast<double>(s.bytes_written) / written : 0,
        written > 0 ? producer_cpu * 1e6 / written : 0,
        written > 0 ? (process_cpu - producer_cpu) * 1e6 / written : 0,
        static_cast<double>(s.flush_latency_max_us) / 1000.0, static_cast<unsigned long long>(s.segments_closed),
        static_cast<unsigned long long>(s.segments_compressed), compress_wait);
    return closed && s.write_errors == 0 ? 0 : 1;
}
