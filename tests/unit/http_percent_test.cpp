// percent_decode: the query-value decoding the admin server (Plus::space) and the simulator's
// batch targets (Plus::literal) share.
#include <mdagg/http.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace {

using mdagg::http::Plus;
using mdagg::http::percent_decode;

TEST(PercentDecode, ValidEscapesInEitherCaseAndPlainTextPassThrough) {
    for (const Plus plus : {Plus::literal, Plus::space}) {
        EXPECT_EQ(percent_decode("", plus), "");
        EXPECT_EQ(percent_decode("STOCK_1", plus), "STOCK_1");
        EXPECT_EQ(percent_decode("%5B%22A%22,%22B%22%5D", plus), "[\"A\",\"B\"]");
        EXPECT_EQ(percent_decode("a%2ab%2Ac", plus), "a*b*c");
        EXPECT_EQ(percent_decode("%41", plus), "A") << "an escape at the very end";
        EXPECT_EQ(percent_decode("%2541", plus), "%41") << "decoded once, not twice";
        EXPECT_EQ(percent_decode("%C3%A9", plus), "\xC3\xA9") << "bytes, not checked as UTF-8 here";
        EXPECT_EQ(percent_decode("%00", plus), std::string(1, '\0'));
        EXPECT_EQ(percent_decode("%2B", plus), "+") << "an encoded plus is always a plus";
    }
}

TEST(PercentDecode, PlusIsASpaceOnlyWhenAsked) {
    EXPECT_EQ(percent_decode("tag=a+b", Plus::space), "tag=a b");
    EXPECT_EQ(percent_decode("++", Plus::space), "  ");
    EXPECT_EQ(percent_decode("a+b", Plus::literal), "a+b");
    EXPECT_EQ(percent_decode("%20+", Plus::literal), " +");
}

TEST(PercentDecode, BadOrTruncatedEscapesMakeTheValueInvalid) {
    for (const Plus plus : {Plus::literal, Plus::space}) {
        EXPECT_EQ(percent_decode("%", plus), std::nullopt);
        EXPECT_EQ(percent_decode("%2", plus), std::nullopt);
        EXPECT_EQ(percent_decode("abc%4", plus), std::nullopt);
        EXPECT_EQ(percent_decode("%G1", plus), std::nullopt);
        EXPECT_EQ(percent_decode("%1G", plus), std::nullopt);
        EXPECT_EQ(percent_decode("%+1", plus), std::nullopt);
        EXPECT_EQ(percent_decode("%%41", plus), std::nullopt);
        EXPECT_EQ(percent_decode("ok%5Bthen%zz", plus), std::nullopt) << "one bad escape spoils the value";
    }
}

}  // namespace
