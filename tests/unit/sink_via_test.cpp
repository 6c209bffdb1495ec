// `via` in quote records (issue 15): the host that served a quote of a source with mirrors.
// JSON: a last "via" key, only when the quote has one; CSV: always a last column, empty
// without mirrors; the free functions and the RecordFormatter (the file and Kafka sinks'
// formatter: a Kafka value is the JSON line) agree.
#include <mdagg/common.hpp>
#include <mdagg/sink.hpp>

#include <gtest/gtest.h>

#include <algorithm>

namespace mdagg {
namespace {

Quote some_quote() {
    Quote q;
    q.bid = *Decimal::parse("1.5");
    q.ask = *Decimal::parse("1.6");
    q.seq = 7;
    return q;
}

Universe universe() {
    Universe u;
    u.sources = {"binance"};
    u.symbols = {"BTCUSDT"};
    return u;
}

TEST(SinkVia, JsonEndsWithTheHostThatServedIt) {
    const Universe u = universe();
    Quote q = some_quote();
    q.via = intern_name("api1.binance.com");
    std::string json, fjson;
    append_quote_json(json, q, u);
    RecordFormatter f(u);
    f.quote_json(fjson, q);
    EXPECT_EQ(json, fjson);
    EXPECT_TRUE(json.ends_with(R"("seq":7,"via":"api1.binance.com"})"
                               "\n"))
        << json;
}

TEST(SinkVia, WithoutMirrorsTheJsonHasNoViaAndTheCsvColumnIsEmpty) {
    const Universe u = universe();
    const Quote q = some_quote();
    std::string json, csv;
    append_quote_json(json, q, u);
    append_quote_csv(csv, q, u);
    EXPECT_EQ(json.find("via"), std::string::npos) << json;
    EXPECT_TRUE(csv.ends_with(",7,,\n")) << csv;  // seq, empty venue_symbol, empty via
}

TEST(SinkVia, CsvHasViaAsItsLastColumnAfterVenueSymbol) {
    EXPECT_TRUE(quote_csv_header.ends_with(",seq,venue_symbol,via\n")) << quote_csv_header;
    Universe u = universe();
    u.venue_symbols.emplace(Universe::venue_key(0, 0), "BTC-USDT");
    Quote q = some_quote();
    q.via = intern_name("127.0.0.2:8443");
    std::string csv, fcsv;
    append_quote_csv(csv, q, u);
    RecordFormatter f(u);
    f.quote_csv(fcsv, q);
    EXPECT_EQ(csv, fcsv);
    EXPECT_TRUE(csv.ends_with(",7,BTC-USDT,127.0.0.2:8443\n")) << csv;
    EXPECT_EQ(std::count(csv.begin(), csv.end(), ','), std::count(quote_csv_header.begin(), quote_csv_header.end(), ','));
    // An IPv6 route: brackets and colons need no CSV quoting; the JSON keeps them as text.
    q.via = intern_name("[::1]:8443");
    csv.clear();
    append_quote_csv(csv, q, u);
    EXPECT_TRUE(csv.ends_with(",[::1]:8443\n")) << csv;
}

TEST(SinkVia, InternedNamesAreOnePointerPerText) {
    const std::string* a = intern_name("api2.binance.com");
    EXPECT_EQ(a, intern_name(std::string("api2.binance.com")));
    EXPECT_NE(a, intern_name("api3.binance.com"));
    EXPECT_EQ(*a, "api2.binance.com");
}

}  // namespace
}  // namespace mdagg
