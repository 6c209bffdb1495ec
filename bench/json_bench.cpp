// The daemon's JSON readers on the two workloads: an OKX-like all-instruments answer
// (the simulator's own body: ALL entries, ~250 KB at 700) with PICK configured entries mapped to
// exact decimals, and a ~150-byte single quote.
//   - The batch answer through the daemon's own BatchMapper::map with each reader
//     (set_batch_reader): the hand-written reader ("ours") and simdjson's stage 1 with the
//     reader's grammar ("simdjson", the daemon's default); both validate the whole body.
//   - The readers alone (events counted, no routing), with simdjson's On-Demand API made to
//     visit every value so that it validates as much (ondemand_walk.hpp; not in the daemon).
//   - The single quote: QuoteMapper against On Demand reading the same fields without
//     validating what it skips (an upper bound on what simdjson could save there) and the
//     validating walk alone.
// Prints the median of REPS repetitions of ITERS calls each, in us. Built and run by
// bench/json_bench.sh.
#include <mdagg/decimal.hpp>
#include <mdagg/mapping.hpp>

#include "batch.hpp"  // the simulator's batch bodies (src/sim)
#include "book.hpp"

#include <simdjson.h>

#include "ondemand_walk.hpp"  // On Demand, visiting every value to validate it (not in the daemon)
#include "simd_reader.hpp"    // src/mapping: stage 1 and the reader's grammar (the batch path)

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
double median_us(int reps, int iters, F&& f) {
    std::vector<double> per_call;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        for (int i = 0; i < iters; ++i) f();
        per_call.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / iters);
    }
    std::sort(per_call.begin(), per_call.end());
    return per_call[per_call.size() / 2];
}

std::size_t sink = 0;  // keeps results alive

// The validating walk's events, counted: what a simdjson single-quote mapper would pay before
// matching any pointer.
struct CountEvents {
    std::size_t n = 0;
    void value_start(const char*) {}
    void value_end(const char*) {}
    void begin_container() { ++n; }
    void end_container() {}
    void key(std::string_view, bool) { ++n; }
    void element() { ++n; }
    void scalar(mdagg::detail::JsonKind, std::string_view, bool) { ++n; }
};

int env_int(const char* name, int fallback) {
    const char* v = std::getenv(name);
    return v ? std::atoi(v) : fallback;
}

}  // namespace

int main() {
    const int all = env_int("ALL", 700), pick = env_int("PICK", 20);
    const int reps = env_int("REPS", 7), iters = env_int("ITERS", 300);

    // The simulator's OKX tickers answer for `all` symbols.
    mdagg::sim::Options options;
    options.symbols = static_cast<std::size_t>(all);
    mdagg::sim::detail::Book book(options);
    const auto ask = mdagg::sim::detail::parse_batch_target("/api/v5/market/tickers?instType=SPOT", book);
    std::string body;
    std::vector<std::size_t> took;
    mdagg::sim::detail::append_batch_body(body, *ask, book, [](std::size_t) { return false; }, took);

    std::vector<std::string> names;
    for (int i = 0; i < pick; ++i) names.push_back("STOCK_" + std::to_string(i * (all / pick)));  // spread out

    // ---- the daemon's BatchMapper, with each reader ---------------------------------------
    mdagg::BatchConfig batch;
    batch.items = "/data";
    batch.symbol = "/instId";
    mdagg::FieldMap fields;
    fields.success = mdagg::SuccessCheck{"/code", std::string("0"), false};
    fields.bid = "/bidPx";
    fields.ask = "/askPx";
    fields.bid_size = "/bidSz";
    fields.ask_size = "/askSz";
    fields.exchange_time = mdagg::TimeField{"/ts", mdagg::TimeUnit::ms};
    const mdagg::BatchMapper mapper(batch, fields);
    const mdagg::BatchMembers members(names);
    std::vector<mdagg::BatchEntry> out;
    mdagg::BatchCounts counts;
    // The body in a buffer with json_padding spare bytes, as the poll path's body has.
    std::string padded_body;
    padded_body.reserve(body.size() + mdagg::json_padding);
    padded_body.assign(body);
    auto map = [&](mdagg::BatchReader reader, const mdagg::BatchMembers& m) {
        mdagg::set_batch_reader(reader);
        return mapper.map(padded_body, padded_body.capacity(), m, out, counts).value();
    };
    for (auto reader : {mdagg::BatchReader::reference, mdagg::BatchReader::fast}) {
        if (map(reader, members) != 0 || counts.missing != 0 ||
            counts.read_by_simdjson != (reader == mdagg::BatchReader::fast)) {
            std::fprintf(stderr, "the mapper refused the body\n");
            return 1;
        }
    }
    using mdagg::BatchReader;
    const double ours = median_us(reps, iters, [&] { sink += map(BatchReader::reference, members); });
    const double simd = median_us(reps, iters, [&] { sink += map(BatchReader::fast, members); });
    // Every entry configured: the reader's cost with nothing skipped.
    std::vector<std::string> every;
    for (int i = 0; i < all; ++i) every.push_back("STOCK_" + std::to_string(i));
    const mdagg::BatchMembers all_members(every);
    const double ours_all = median_us(reps, iters / 3 + 1, [&] { sink += map(BatchReader::reference, all_members); });
    const double simd_all_us = median_us(reps, iters / 3 + 1, [&] { sink += map(BatchReader::fast, all_members); });
    // The scan alone: nothing configured (every entry routed and skipped).
    const mdagg::BatchMembers none_members(std::vector<std::string>{"NONE"});
    const double ours_scan = median_us(reps, iters, [&] { sink += map(BatchReader::reference, none_members); });
    const double simd_scan = median_us(reps, iters, [&] { sink += map(BatchReader::fast, none_members); });
    simdjson::ondemand::parser parser;

    // The readers alone, validating the whole body, events counted (no routing, no mapping):
    // the hand-written reader, simdjson On Demand visiting every value, simdjson's stage 1
    // with the reader's grammar over its index (what the batch path uses).
    CountEvents events;
    mdagg::detail::JsonReader json_reader;
    mdagg::detail::SimdReader simd_reader;
    auto ondemand_walk = [&](const std::string& padded) {
        mdagg::detail::SimdWalk<CountEvents> walk(events, padded);
        return walk.run(parser, padded, padded.capacity());
    };
    if (!json_reader.read(padded_body, events) || !ondemand_walk(padded_body) || !simd_reader.read(padded_body, events)) {
        std::fprintf(stderr, "a reader refused the body\n");
        return 1;
    }
    const double read_ours = median_us(reps, iters, [&] { sink += json_reader.read(padded_body, events); });
    const double read_ondemand = median_us(reps, iters, [&] { sink += ondemand_walk(padded_body); });
    const double read_stage1 = median_us(reps, iters, [&] { sink += simd_reader.read(padded_body, events); });

    // ---- a single ~150-byte quote ------------------------------------------------------------
    std::string single;
    book.append_json(single, 1, book.next(1));
    mdagg::FieldMap single_fields;
    single_fields.symbol = "/symbol";
    single_fields.bid = "/bidPrice";
    single_fields.ask = "/askPrice";
    single_fields.bid_size = "/bidQty";
    single_fields.ask_size = "/askQty";
    single_fields.exchange_time = mdagg::TimeField{"/time", mdagg::TimeUnit::ms};
    single_fields.seq = "/seq";
    const mdagg::QuoteMapper quote_mapper(single_fields);
    mdagg::Quote q;
    const simdjson::padded_string padded_single(single);
    auto simd_single = [&]() -> std::size_t {
        auto doc = parser.iterate(padded_single);
        simdjson::ondemand::object o = doc.get_object();
        std::string_view sym = o["symbol"].get_string();
        if (sym != "STOCK_1") return 0;
        std::string_view bid = o["bidPrice"].get_string(), bq = o["bidQty"].get_string();
        std::string_view ask_px = o["askPrice"].get_string(), aq = o["askQty"].get_string();
        const std::int64_t t = o["time"].get_int64();
        const std::int64_t seq = o["seq"].get_int64();
        return (mdagg::Decimal::parse(bid) && mdagg::Decimal::parse(ask_px) && mdagg::Decimal::parse(bq) &&
                mdagg::Decimal::parse(aq) && t > 0)
                   ? static_cast<std::size_t>(seq)
                   : 0;
    };
    if (quote_mapper.map(single, "STOCK_1", q) || simd_single() == 0) {
        std::fprintf(stderr, "single quote refused\n");
        return 1;
    }
    const double ours_single = median_us(reps, iters * 100, [&] { sink += quote_mapper.map(single, "STOCK_1", q).value(); });
    const double simd_single_us = median_us(reps, iters * 100, [&] { sink += simd_single(); });
    std::string single_padded;
    single_padded.reserve(single.size() + mdagg::json_padding);
    single_padded.assign(single);
    if (!ondemand_walk(single_padded) || !simd_reader.read(single_padded, events)) {
        std::fprintf(stderr, "a reader refused the single quote\n");
        return 1;
    }
    const double walk_single_us = median_us(reps, iters * 100, [&] { sink += ondemand_walk(single_padded); });
    const double stage1_single_us = median_us(reps, iters * 100, [&] { sink += simd_reader.read(single_padded, events); });
    const double read_single_us = median_us(reps, iters * 100, [&] { sink += json_reader.read(single_padded, events); });

    std::printf("{\"body_bytes\":%zu,\"entries\":%d,\"picked\":%d,"
                "\"ours_us\":%.1f,\"simdjson_us\":%.1f,\"ours_over_simdjson\":%.2f,"
                "\"ours_all_us\":%.1f,\"simdjson_all_us\":%.1f,\"ours_scan_only_us\":%.1f,\"simdjson_scan_only_us\":%.1f,"
                "\"single_bytes\":%zu,\"ours_single_us\":%.3f,\"simdjson_single_us\":%.3f,\"simdjson_single_validating_walk_us\":%.3f,"
                "\"read_ours_us\":%.1f,\"read_ondemand_us\":%.1f,\"read_stage1_us\":%.1f,"
                "\"read_single_ours_us\":%.3f,\"read_single_stage1_us\":%.3f,\"sink\":%zu}\n",
                body.size(), all, pick, ours, simd, ours / simd, ours_all, simd_all_us, ours_scan, simd_scan, single.size(),
                ours_single, simd_single_us, walk_single_us, read_ours, read_ondemand, read_stage1,
                read_single_us, stage1_single_us, sink % 10);
    return 0;
}
