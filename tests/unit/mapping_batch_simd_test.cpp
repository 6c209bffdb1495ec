// BatchMapper's two readers: simdjson's stage 1 with the reader's grammar over its index (the
// default for batch answers) and the hand-written reader. Every body here is mapped by both and
// must give the same answer-level error, the same counts and, per member, the same result with
// the same digits; the tests also say which bodies simdjson reads itself (the fast path must
// really be taken) and which it leaves to the reader (escapes, a BOM, invalid text).
#include <mdagg/mapping.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mdagg {
namespace {

struct Answer {
    std::error_code error;
    std::vector<BatchEntry> out;
    BatchCounts counts;
};

std::string describe(const Answer& a) {
    std::string s = a.error ? a.error.message() : std::string("ok");
    const BatchCounts& c = a.counts;
    s.append(" entries=").append(std::to_string(c.entries)).append(" unknown=").append(std::to_string(c.unknown));
    s.append(" missing=").append(std::to_string(c.missing)).append(" dup=").append(std::to_string(c.duplicates));
    s.append(" bad=").append(std::to_string(c.bad_symbols)).append(" first_dup=").append(std::to_string(c.first_duplicate));
    if (a.error) return s;
    for (const BatchEntry& e : a.out) {
        s.append(" [");
        if (!e.seen) {
            s.append("unseen]");
            continue;
        }
        if (e.error) {
            s.append(e.error.message()).append("]");
            continue;
        }
        const Quote& q = e.quote;
        s.append(q.bid.to_string()).append("/").append(q.ask.to_string());
        if (q.has_bid_size) s.append(" bs=").append(q.bid_size.to_string());
        if (q.has_ask_size) s.append(" as=").append(q.ask_size.to_string());
        s.append(" t=").append(std::to_string(q.exchange_time_ns)).append(" seq=").append(std::to_string(q.seq)).append("]");
    }
    return s;
}

struct Both {
    Answer reference, fast;
};

// The body in a buffer with json_padding spare bytes, as the poll path passes it.
Both run_both(const BatchMapper& mapper, std::string_view body, const std::vector<std::string>& names) {
    const BatchMembers members(names);
    std::string padded;
    padded.reserve(body.size() + json_padding);
    padded.assign(body);
    Both b;
    set_batch_reader(BatchReader::reference);
    b.reference.error = mapper.map(padded, padded.capacity(), members, b.reference.out, b.reference.counts);
    set_batch_reader(BatchReader::fast);
    b.fast.error = mapper.map(padded, padded.capacity(), members, b.fast.out, b.fast.counts);
    return b;
}

// Both readers agree; returns the fast one's answer.
Answer agreed(const BatchMapper& mapper, std::string_view body, const std::vector<std::string>& names) {
    const Both b = run_both(mapper, body, names);
    EXPECT_FALSE(b.reference.counts.read_by_simdjson);
    EXPECT_EQ(describe(b.reference), describe(b.fast)) << "body: " << body;
    return b.fast;
}

BatchConfig okx_batch() {
    BatchConfig b;
    b.items = "/data";
    b.symbol = "/instId";
    return b;
}

FieldMap okx_fields() {
    FieldMap f;
    f.success = SuccessCheck{"/code", std::string("0"), false};
    f.bid = "/bidPx";
    f.ask = "/askPx";
    f.bid_size = "/bidSz";
    f.ask_size = "/askSz";
    f.exchange_time = TimeField{"/ts", TimeUnit::ms};
    f.seq = "/seq";
    return f;
}

const std::string okx_body =
    R"({"code":"0","msg":"","data":[)"
    R"({"instId":"BTC-USDT","bidPx":"64000.10","askPx":"64000.20","bidSz":"1.5","askSz":"0.25","ts":"1700000000123"},)"
    R"( {"instId":"XRP-USDT","bidPx":"0.5","askPx":"0.6","ts":"1700000000124"},)"
    R"({"instId":"ETH-USDT","bidPx":3000.5,"askPx":3000.75,"bidSz":10,"askSz":2E1,"ts":1700000000125,"seq":42} ]})";

TEST(BatchSimd, OkxAnswerReadBySimdjsonWithExactDecimals) {
    const BatchMapper mapper(okx_batch(), okx_fields());
    const Answer a = agreed(mapper, okx_body, {"BTC-USDT", "ETH-USDT", "SOL-USDT"});
    ASSERT_FALSE(a.error);
    EXPECT_TRUE(a.counts.read_by_simdjson);
    EXPECT_EQ(a.counts.entries, 3u);
    EXPECT_EQ(a.counts.unknown, 1u);
    EXPECT_EQ(a.counts.missing, 1u);
    ASSERT_TRUE(a.out[0].seen);
    EXPECT_EQ(a.out[0].quote.bid.to_string(), "64000.10");  // the venue's digits, never a double
    EXPECT_EQ(a.out[1].quote.bid.to_string(), "3000.5");  // a number token, its text
    EXPECT_EQ(a.out[1].quote.seq, 42);
}

TEST(BatchSimd, NumbersAsStringsAndAsNumbersAgree) {
    const BatchMapper mapper(okx_batch(), okx_fields());
    for (const char* bid : {R"("1.10")", "1.10", "-0", "0.000000001", "123456789012345678901234567890", "1e400",
                            R"("1e2")", R"("")", "true", "null", "[]", "{}", R"("abc")"}) {
        std::string body = R"({"code":"0","data":[{"instId":"A","bidPx":)";
        body.append(bid).append(R"(,"askPx":"2"}]})");
        const Answer a = agreed(mapper, body, {"A"});
        EXPECT_TRUE(a.counts.read_by_simdjson) << body;
    }
}

TEST(BatchSimd, NestedPointersAndKeyedObjects) {
    // Bybit's /result/list with a nested symbol pointer; Kraken's object keyed by pair name.
    BatchConfig nested;
    nested.items = "/result/list";
    nested.symbol = "/meta/sym";
    FieldMap f;
    f.bid = "/q/b/0";
    f.ask = "/q/a/0";
    const BatchMapper mapper(nested, f);
    const std::string body =
        R"({"retCode":0,"result":{"list":[{"meta":{"sym":"A"},"q":{"b":["1.5","x"],"a":["2.5"]}},)"
        R"({"meta":{"other":1,"sym":"B"},"q":{"b":[],"a":["3"]}},{"meta":[{"sym":"C"}]},{"meta":{"sym":7}}]}})";
    const Answer a = agreed(mapper, body, {"A", "B", "C"});
    EXPECT_TRUE(a.counts.read_by_simdjson);
    EXPECT_EQ(a.counts.bad_symbols, 2u);  // C's symbol is in an array, 7 is not a string
    EXPECT_FALSE(a.out[0].error);
    EXPECT_TRUE(a.out[1].error);  // missing bid

    BatchConfig keyed;
    keyed.items = "/result";
    keyed.symbol = "#key";
    FieldMap k;
    k.bid = "/b/0";
    k.ask = "/a/0";
    const BatchMapper kraken(keyed, k);
    const Answer b = agreed(kraken, R"({"error":[],"result":{"XXBTZUSD":{"a":["2"],"b":["1"]},"XETHZUSD":{"a":["4"],"b":["3"]}}})",
                            {"XETHZUSD", "XXBTZUSD"});
    EXPECT_TRUE(b.counts.read_by_simdjson);
    EXPECT_EQ(b.out[0].quote.bid.to_string(), "3");
    // "#key" on an array, items on a scalar, on nothing: their class from both readers.
    for (const char* bad : {R"({"result":[{"a":["1"],"b":["1"]}]})", R"({"result":5})", R"({"other":{}})", "[]", "7"})
        EXPECT_TRUE(agreed(kraken, bad, {"X"}).error) << bad;
}

TEST(BatchSimd, EscapedKeysAndUnicodeSymbolsGoToTheReader) {
    const BatchMapper mapper(okx_batch(), okx_fields());
    // An escaped key that names the pointer's member, a symbol spelled with \u escapes, a
    // surrogate pair: the reader decodes them; simdjson's path leaves any backslash to it.
    const std::string body = R"({"c\u006fde":"0","data":[{"inst\u0049d":"BTC\u002dUSDT","bidPx":"1","askPx":"2"},)"
                             R"({"instId":"\ud83d\ude00","bidPx":"3","askPx":"4"},{"instId":"\u00e9","bidPx":"5","askPx":"6"}]})";
    const Answer a = agreed(mapper, body, {"BTC-USDT", "\xF0\x9F\x98\x80", "\xC3\xA9"});
    EXPECT_FALSE(a.counts.read_by_simdjson);
    ASSERT_FALSE(a.error);
    EXPECT_EQ(a.counts.missing, 0u);
    // The same symbols as raw UTF-8: simdjson reads them.
    const Answer raw = agreed(mapper,
                              "{\"code\":\"0\",\"data\":[{\"instId\":\"\xF0\x9F\x98\x80\",\"bidPx\":\"3\",\"askPx\":\"4\"},"
                              "{\"instId\":\"\xC3\xA9\",\"bidPx\":\"5\",\"askPx\":\"6\"}]}",
                              {"\xF0\x9F\x98\x80", "\xC3\xA9"});
    EXPECT_TRUE(raw.counts.read_by_simdjson);
    EXPECT_EQ(raw.counts.missing, 0u);
}

TEST(BatchSimd, DuplicatesAndBadSymbolsAgree) {
    const BatchMapper mapper(okx_batch(), okx_fields());
    const Answer a = agreed(mapper,
                            R"({"code":"0","data":[{"instId":"A","bidPx":"1","askPx":"2"},{"instId":"A","bidPx":"9","askPx":"9"},)"
                            R"({"instId":null,"bidPx":"1","askPx":"2"},{"bidPx":"1","askPx":"2"},{"instId":"B","instId":"A"},"str",7]})",
                            {"A", "B"});
    EXPECT_TRUE(a.counts.read_by_simdjson);
    EXPECT_EQ(a.counts.duplicates, 1u);  // the first A kept; the entry whose first instId is B maps B
    EXPECT_EQ(a.out[0].quote.bid.to_string(), "1");
    EXPECT_EQ(a.counts.bad_symbols, 4u);
}

TEST(BatchSimd, SuccessCheckAndTrailingGarbageAgree) {
    const BatchMapper mapper(okx_batch(), okx_fields());
    for (const char* body : {R"({"code":"1","data":[]})", R"({"data":[],"code":"0"})", R"({"data":[]})",
                             R"({"code":"0","data":[]} )", R"({"code":"0","data":[]}x)", R"({"code":"0","data":[]}{})",
                             R"({"code":"0","data":[]},)", "{\"code\":\"0\",\"data\":[]}\x00", R"({"code":"0","data":[]]})",
                             "\xEF\xBB\xBF{\"code\":\"0\",\"data\":[]}", " \t\r\n{\"code\":\"0\",\"data\":[]}\n", "", "   ",
                             R"({"code":"0" "data":[]})", R"({"code":"0",,"data":[]})", R"({"code":"0","data":[1,]})",
                             R"({"code":"0","data":[tru]})", R"({"code":"0","data":[01]})", R"({"code":"0","data":["a"b"]})",
                             R"({"code":"0","data":["a""b"]})", R"({"code":"0","data":[- 1]})", R"({"code":"0","data":[nulll]})",
                             "{\"code\":\"0\",\"data\":[\"a\x01\"]}", "{\"code\":\"0\",\"data\":[\"\xff\"]}", R"({"code":0,"data":[]})",
                             R"({1:2})", R"({"a"})", R"({"a":})", R"([1 2])", R"({"code":"0","data":{}})"})
        agreed(mapper, body, {"A"});
}

// Every prefix of a valid answer (a truncated body) and every byte replaced by a character
// that matters to the grammar: both readers agree on each.
TEST(BatchSimd, TruncatedAndMutatedBodiesAgree) {
    const BatchMapper mapper(okx_batch(), okx_fields());
    const std::vector<std::string> names{"BTC-USDT", "ETH-USDT"};
    std::size_t fast = 0;
    for (std::size_t n = 0; n <= okx_body.size(); ++n) agreed(mapper, okx_body.substr(0, n), names);
    for (std::size_t i = 0; i < okx_body.size(); ++i) {
        for (char c : std::string_view("\"\\,:{}[] x0-.e\x01\x00\xc3", 18)) {
            std::string body = okx_body;
            body[i] = c;
            fast += agreed(mapper, body, names).counts.read_by_simdjson ? 1 : 0;
        }
    }
    EXPECT_GT(fast, 0u);  // the fast path read some of them itself
}

TEST(BatchSimd, ABodyWithoutPaddingIsCopiedAndStillReadBySimdjson) {
    const BatchMapper mapper(okx_batch(), okx_fields());
    const BatchMembers members(std::vector<std::string>{"BTC-USDT"});
    std::vector<BatchEntry> out;
    BatchCounts counts;
    set_batch_reader(BatchReader::fast);
    ASSERT_FALSE(mapper.map(okx_body, members, out, counts));
    EXPECT_TRUE(counts.read_by_simdjson);
    // Too little spare capacity given: the reader reads it in place.
    ASSERT_FALSE(mapper.map(okx_body, okx_body.size(), members, out, counts));
    EXPECT_FALSE(counts.read_by_simdjson);
    EXPECT_TRUE(out[0].seen);
}

}  // namespace
}  // namespace mdagg
