// venue_symbol in quote records: present in JSON and as the last CSV column when the source
// spells the symbol otherwise, absent (empty) when not; the same from the free functions and
// the RecordFormatter, which the file and Kafka sinks use.
#include <mdagg/sink.hpp>

#include <gtest/gtest.h>

#include <algorithm>

namespace mdagg {
namespace {

TEST(SinkVenueSymbol, QuoteRecordsCarryTheVenueNameWhereItDiffers) {
    Universe u;
    u.sources = {"okx", "coinbase"};
    u.symbols = {"BTC-USD"};
    u.venue_symbols.emplace(Universe::venue_key(0, 0), "BTC-USDT");
    Quote q;
    q.bid = *Decimal::parse("66260.2");
    q.ask = *Decimal::parse("66260.3");
    q.seq = 5;
    RecordFormatter f(u);
    for (SourceId source : {0u, 1u}) {
        q.source = source;
        std::string json, csv, fjson, fcsv;
        append_quote_json(json, q, u);
        append_quote_csv(csv, q, u);
        f.quote_json(fjson, q);
        f.quote_csv(fcsv, q);
        EXPECT_EQ(json, fjson);
        EXPECT_EQ(csv, fcsv);
        if (source == 0) {
            EXPECT_TRUE(json.starts_with(R"({"type":"quote","source":"okx","symbol":"BTC-USD","venue_symbol":"BTC-USDT","bid")")) << json;
            EXPECT_TRUE(csv.starts_with("okx,BTC-USD,66260.2,")) << csv;
            EXPECT_TRUE(csv.ends_with(",5,BTC-USDT,\n")) << csv;
        } else {
            EXPECT_EQ(json.find("venue_symbol"), std::string::npos) << json;
            EXPECT_TRUE(csv.ends_with(",5,,\n")) << csv;
        }
        EXPECT_EQ(std::count(csv.begin(), csv.end(), ','), std::count(quote_csv_header.begin(), quote_csv_header.end(), ','));
    }
}

}  // namespace
}  // namespace mdagg
