// The daemon's JSON reader (src/mapping: BatchMapper, QuoteMapper) against simdjson's On-Demand
// API (Debian libsimdjson-dev 3.0.1) on the two workloads: an OKX-like all-instruments
// answer (the simulator's own body: ALL entries, ~250 KB at 700) with PICK configured entries
// mapped to exact decimals, and a ~150-byte single quote. Both sides do the same work: check
// the success field, route every entry by its symbol, read the configured entries' prices,
// sizes and time, and parse them into Decimals with the daemon's parser. Prints the median of
// REPS repetitions of ITERS calls each, in us per answer. Built and run by bench/json_bench.sh.
#include <mdagg/decimal.hpp>
#include <mdagg/mapping.hpp>

#include "batch.hpp"  // the simulator's batch bodies (src/sim)
#include "book.hpp"

#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_set>
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

    // ---- the daemon's reader -----------------------------------------------------------------
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
    if (mapper.map(body, members, out, counts) || counts.missing != 0) {
        std::fprintf(stderr, "the daemon's mapper refused the body\n");
        return 1;
    }

    // ---- simdjson On Demand, the same work ----------------------------------------------------
    // The body in a padded buffer, as the daemon's read buffer would have to be (allocated
    // once with SIMDJSON_PADDING spare bytes): no copy per answer.
    const simdjson::padded_string padded(body);
    simdjson::ondemand::parser parser;
    const std::unordered_set<std::string_view> wanted(names.begin(), names.end());
    auto simd_batch = [&]() -> std::size_t {
        auto doc = parser.iterate(padded);
        std::string_view code;
        if (doc["code"].get_string().get(code) || code != "0") return 0;
        simdjson::ondemand::array data;
        if (doc["data"].get_array().get(data)) return 0;
        std::size_t mapped = 0;
        for (auto element : data) {
            simdjson::ondemand::object entry;
            if (element.get_object().get(entry)) return 0;
            std::string_view inst;
            if (entry["instId"].get_string().get(inst)) continue;
            if (!wanted.count(inst)) continue;  // skipped: no decimal parsed
            std::string_view bid, ask_px, bid_sz, ask_sz, ts;
            if (entry["bidPx"].get_string().get(bid) || entry["askPx"].get_string().get(ask_px) ||
                entry["bidSz"].get_string().get(bid_sz) || entry["askSz"].get_string().get(ask_sz) ||
                entry["ts"].get_string().get(ts))
                continue;
            const auto b = mdagg::Decimal::parse(bid), a = mdagg::Decimal::parse(ask_px);
            const auto bs = mdagg::Decimal::parse(bid_sz), as = mdagg::Decimal::parse(ask_sz);
            std::int64_t t = 0;
            for (char c : ts) t = t * 10 + (c - '0');
            if (b && a && bs && as && t > 0) ++mapped;
        }
        return mapped;
    };
    if (simd_batch() != static_cast<std::size_t>(pick)) {
        std::fprintf(stderr, "simdjson mapped %zu of %d\n", simd_batch(), pick);
        return 1;
    }

    const double ours = median_us(reps, iters, [&] { sink += mapper.map(body, members, out, counts).value(); });
    const double simd = median_us(reps, iters, [&] { sink += simd_batch(); });
    // Every entry configured: the reader's cost with nothing skipped.
    std::vector<std::string> every;
    for (int i = 0; i < all; ++i) every.push_back("STOCK_" + std::to_string(i));
    const mdagg::BatchMembers all_members(every);
    const std::unordered_set<std::string_view> all_wanted(every.begin(), every.end());
    auto simd_all = [&]() -> std::size_t {
        auto doc = parser.iterate(padded);
        std::size_t mapped = 0;
        for (auto element : doc["data"]) {
            simdjson::ondemand::object entry = element.get_object();
            std::string_view inst = entry["instId"].get_string();
            if (!all_wanted.count(inst)) continue;
            std::string_view bid = entry["bidPx"].get_string(), ask_px = entry["askPx"].get_string();
            std::string_view bid_sz = entry["bidSz"].get_string(), ask_sz = entry["askSz"].get_string();
            mapped += mdagg::Decimal::parse(bid) && mdagg::Decimal::parse(ask_px) && mdagg::Decimal::parse(bid_sz) &&
                      mdagg::Decimal::parse(ask_sz);
        }
        return mapped;
    };
    const double ours_all = median_us(reps, iters / 3 + 1, [&] { sink += mapper.map(body, all_members, out, counts).value(); });
    const double simd_all_us = median_us(reps, iters / 3 + 1, [&] { sink += simd_all(); });
    // The scan alone: nothing configured (every entry routed and skipped).
    const mdagg::BatchMembers none_members(std::vector<std::string>{"NONE"});
    const double ours_scan = median_us(reps, iters, [&] { sink += mapper.map(body, none_members, out, counts).value(); });

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

    std::printf("{\"body_bytes\":%zu,\"entries\":%d,\"picked\":%d,"
                "\"ours_us\":%.1f,\"simdjson_us\":%.1f,\"ours_over_simdjson\":%.2f,"
                "\"ours_all_us\":%.1f,\"simdjson_all_us\":%.1f,\"ours_scan_only_us\":%.1f,"
                "\"single_bytes\":%zu,\"ours_single_us\":%.3f,\"simdjson_single_us\":%.3f,\"sink\":%zu}\n",
                body.size(), all, pick, ours, simd, ours / simd, ours_all, simd_all_us, ours_scan, single.size(),
                ours_single, simd_single_us, sink % 10);
    return 0;
}
