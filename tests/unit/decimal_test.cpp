#include <mdagg/decimal.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

using mdagg::Decimal;
using namespace std::string_view_literals;

namespace {

constexpr std::int64_t i64_max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t i64_min = std::numeric_limits<std::int64_t>::min();

// Parses text that must be valid.
Decimal D(std::string_view text) {
    auto d = Decimal::parse(text);
    EXPECT_TRUE(d.has_value()) << "parse failed: " << text;
    return d.value_or(Decimal());
}

::testing::AssertionResult Is(std::optional<Decimal> d, std::int64_t mantissa, int scale) {
    if (!d) return ::testing::AssertionFailure() << "nullopt";
    if (d->mantissa() != mantissa || d->scale() != scale) {
        return ::testing::AssertionFailure()
               << "got (" << d->mantissa() << ", " << d->scale() << ") want (" << mantissa
               << ", " << scale << ")";
    }
    return ::testing::AssertionSuccess();
}

}  // namespace

TEST(DecimalParse, KeepsFractionDigitsAsGiven) {
    EXPECT_TRUE(Is(Decimal::parse("0.00000200"), 200, 8));
    EXPECT_TRUE(Is(Decimal::parse("4.00000000"), 400000000, 8));
    EXPECT_TRUE(Is(Decimal::parse("-0.5"), -5, 1));
    EXPECT_TRUE(Is(Decimal::parse("0"), 0, 0));
    EXPECT_TRUE(Is(Decimal::parse("-12"), -12, 0));
    EXPECT_TRUE(Is(Decimal::parse("+3"), 3, 0));
    EXPECT_TRUE(Is(Decimal::parse("101.25"), 10125, 2));
    EXPECT_TRUE(Is(Decimal::parse("0.000000000000000001"), 1, 18));
    EXPECT_TRUE(Is(Decimal::parse("-0.0"), 0, 1));
}

TEST(DecimalParse, Int64Limits) {
    EXPECT_TRUE(Is(Decimal::parse("9223372036854775807"), i64_max, 0));
    EXPECT_TRUE(Is(Decimal::parse("-9223372036854775808"), i64_min, 0));
    EXPECT_TRUE(Is(Decimal::parse("9.223372036854775807"), i64_max, 18));
    EXPECT_TRUE(Is(Decimal::parse("-922337203.6854775808"), i64_min, 10));
    EXPECT_FALSE(Decimal::parse("9223372036854775808"));
    EXPECT_FALSE(Decimal::parse("-9223372036854775809"));
    EXPECT_FALSE(Decimal::parse("99999999999999999999"));
    EXPECT_FALSE(Decimal::parse("92233720368547758.08"));  // mantissa overflows at scale 2
}

TEST(DecimalParse, ExponentShiftsTheScale) {
    EXPECT_TRUE(Is(Decimal::parse("1.5e-3"), 15, 4));
    EXPECT_TRUE(Is(Decimal::parse("1E+2"), 100, 0));
    EXPECT_TRUE(Is(Decimal::parse("1e2"), 100, 0));
    EXPECT_TRUE(Is(Decimal::parse("1.50e1"), 150, 1));  // fraction digits beyond the shift stay
    EXPECT_TRUE(Is(Decimal::parse("2.5E0"), 25, 1));
    EXPECT_TRUE(Is(Decimal::parse("-7e-18"), -7, 18));
    EXPECT_TRUE(Is(Decimal::parse("9.223372036854775807e18"), i64_max, 0));
    EXPECT_TRUE(Is(Decimal::parse("0e5"), 0, 0));
    EXPECT_TRUE(Is(Decimal::parse("0e-999999999999"), 0, 18));  // zero at any scale is zero
    EXPECT_TRUE(Is(Decimal::parse("0e999999999999"), 0, 0));
    EXPECT_FALSE(Decimal::parse("1e19"));
    EXPECT_FALSE(Decimal::parse("1e999999999999"));
    EXPECT_FALSE(Decimal::parse("1e-19"));
    EXPECT_FALSE(Decimal::parse("1e-999999999999"));
}

TEST(DecimalParse, ScaleAbove18OnlyViaTrailingZeros) {
    // Normalisation drops trailing zeros only as far as needed to reach scale 18.
    EXPECT_TRUE(Is(Decimal::parse("1.00000000000000000000"), 1'000'000'000'000'000'000, 18));
    EXPECT_TRUE(Is(Decimal::parse("100e-20"), 1, 18));
    EXPECT_TRUE(Is(Decimal::parse("0.0000000000000000000"), 0, 18));
    EXPECT_FALSE(Decimal::parse("0.0000000000000000001"));
    EXPECT_FALSE(Decimal::parse("0.1000000000000000001"));
    EXPECT_FALSE(Decimal::parse("12e-20"));
}

TEST(DecimalParse, ToleratesLeadingZeros) {
    EXPECT_TRUE(Is(Decimal::parse("007"), 7, 0));
    EXPECT_TRUE(Is(Decimal::parse("00.50"), 50, 2));
    EXPECT_TRUE(Is(Decimal::parse("0000000000000000000000000001"), 1, 0));
}

TEST(DecimalParse, Rejects) {
    for (std::string_view bad :
         {""sv, " "sv, " 1"sv, "1 "sv, "\t1"sv, "1\n"sv, "abc"sv, "NaN"sv, "nan"sv, "Inf"sv,
          "inf"sv, "-Infinity"sv, "Infinity"sv, ".5"sv, "-.5"sv, "5."sv, "-"sv, "+"sv, "--1"sv,
          "+-1"sv, "-+1"sv, "++1"sv, "1e"sv, "1e+"sv, "1e-"sv, "e5"sv, "1.e5"sv, "1.2.3"sv,
          "1,5"sv, "1_000"sv, "0x10"sv, "1f"sv, "12a"sv, "1e5.5"sv, "1ee5"sv, "\"1\""sv,
          "\xEF\xBC\x91"sv /* fullwidth 1 */, "1\0"sv, "\0"sv}) {
        EXPECT_FALSE(Decimal::parse(bad)) << '"' << bad << '"';
    }
}

TEST(DecimalFormat, CanonicalText) {
    EXPECT_EQ(Decimal(-5, 3).to_string(), "-0.005");
    EXPECT_EQ(Decimal(120, 0).to_string(), "120");
    EXPECT_EQ(Decimal(0, 0).to_string(), "0");
    EXPECT_EQ(Decimal(0, 3).to_string(), "0.000");
    EXPECT_EQ(Decimal(5, 1).to_string(), "0.5");
    EXPECT_EQ(Decimal(15, 1).to_string(), "1.5");
    EXPECT_EQ(Decimal(-1234, 2).to_string(), "-12.34");
    EXPECT_EQ(Decimal(1, 18).to_string(), "0.000000000000000001");
    EXPECT_EQ(Decimal(i64_min, 0).to_string(), "-9223372036854775808");
    EXPECT_EQ(Decimal(i64_min, 18).to_string(), "-9.223372036854775808");
    EXPECT_EQ(Decimal(i64_max, 18).to_string(), "9.223372036854775807");
    EXPECT_EQ(Decimal(i64_min, 19 - 1).to_string().size(), 21u);
}

TEST(DecimalFormat, WritesIntoCallerBufferWithoutTerminator) {
    char buf[Decimal::max_chars + 1];
    std::fill(std::begin(buf), std::end(buf), '#');
    char* end = Decimal(-200, 8).format(buf);
    EXPECT_EQ(std::string_view(buf, static_cast<std::size_t>(end - buf)), "-0.00000200");
    EXPECT_EQ(*end, '#');  // nothing written past the returned end
}

TEST(DecimalFormat, LongestOutputsFitMaxChars) {
    for (std::int64_t m : {i64_min, i64_max, std::int64_t{-1}, std::int64_t{1}}) {
        for (int scale = 0; scale <= Decimal::max_scale; ++scale) {
            char buf[Decimal::max_chars];
            EXPECT_LE(static_cast<std::size_t>(Decimal(m, scale).format(buf) - buf),
                      Decimal::max_chars);
        }
    }
}

// The digit-at-a-time format() that format() replaced for speed: the reference its output
// must match byte for byte.
std::string reference_format(std::int64_t mantissa, int scale) {
    scale = std::clamp(scale, 0, Decimal::max_scale);
    std::uint64_t magnitude = mantissa < 0 ? 0 - static_cast<std::uint64_t>(mantissa)
                                           : static_cast<std::uint64_t>(mantissa);
    std::string digits;
    do {
        digits.insert(digits.begin(), static_cast<char>('0' + magnitude % 10));
        magnitude /= 10;
    } while (magnitude != 0);
    const auto n = digits.size();
    const auto point = static_cast<std::size_t>(scale);
    // Appends in place: g++ 12 -O3 takes `"." + std::string` for an overlapping copy (-Wrestrict).
    std::string out;
    if (mantissa < 0) out.push_back('-');
    if (n <= point) {
        out.append("0.").append(point - n, '0').append(digits);
        return out;
    }
    out.append(digits, 0, n - point);
    if (point > 0) out.append(1, '.').append(digits, n - point);
    return out;
}

TEST(DecimalFormat, MatchesTheReferenceAtEveryMagnitudeAndScale) {
    // Every digit count on both sides of each power of ten (where the digit-pair writer and
    // the digit count change), both signs, the 32/64-bit split and the int64 extremes, at
    // every scale and at out-of-range scales (clamped).
    std::vector<std::int64_t> mantissas = {0, i64_max, i64_min, i64_min + 1,
                                           4294967295, 4294967296, -4294967295, -4294967296};
    for (std::int64_t p = 1; p <= i64_max / 10; p *= 10)
        for (std::int64_t m : {p - 1, p, p + 1, 2 * p, 9 * p + (p - 1), 10 * p - 1})
            for (std::int64_t sign : {1, -1}) mantissas.push_back(sign * m);
    std::mt19937_64 rng(20261126);
    for (int i = 0; i < 5000; ++i) {
        const auto m = static_cast<std::int64_t>(rng() >> (1 + rng() % 63));
        mantissas.push_back((rng() & 1) ? m : -m);
    }
    for (std::int64_t m : mantissas)
        for (int scale = -2; scale <= Decimal::max_scale + 2; ++scale) {
            char buf[Decimal::max_chars];
            char* end = Decimal(m, scale).format(buf);
            ASSERT_EQ(std::string(buf, static_cast<std::size_t>(end - buf)), reference_format(m, scale)) << m << " scale " << scale;
        }
}

TEST(DecimalRoundTrip, TextSurvivesParseAndFormat) {
    for (std::string_view text :
         {"0.00000200"sv, "4.00000000"sv, "-0.5"sv, "0"sv, "120"sv, "66256.8"sv, "0.000"sv,
          "9223372036854775807"sv, "-9223372036854775808"sv, "922337203.6854775807"sv,
          "-0.000000000000000001"sv, "1617827221349730300"sv, "30300.10000"sv}) {
        EXPECT_EQ(D(text).to_string(), text);
    }
}

TEST(DecimalRoundTrip, RandomMantissaAndScale) {
    std::mt19937_64 rng(20240611);
    for (int i = 0; i < 20000; ++i) {
        const auto m = static_cast<std::int64_t>(rng() >> (1 + rng() % 63));
        const std::int64_t signed_m = (rng() & 1) ? m : -m;
        const int scale = static_cast<int>(rng() % (Decimal::max_scale + 1));
        const Decimal d(signed_m, scale);
        EXPECT_TRUE(Is(Decimal::parse(d.to_string()), signed_m, scale)) << d.to_string();
    }
}

TEST(DecimalCompare, ByValueAcrossScales) {
    EXPECT_EQ(D("1.50"), D("1.5"));
    EXPECT_EQ(D("0"), D("-0.000"));
    EXPECT_EQ(D("100"), D("1e2"));
    EXPECT_NE(D("1.5"), D("1.51"));
    EXPECT_LT(D("1.5"), D("1.51"));
    EXPECT_LT(D("1.49999999"), D("1.5"));
    EXPECT_GT(D("2"), D("1.999999999999999999"));
    EXPECT_LT(D("-0.1"), D("0"));
    EXPECT_LT(D("-2"), D("-1.5"));
    EXPECT_EQ(D("4.00000200") <=> D("4.000002"), std::strong_ordering::equal);
    EXPECT_EQ(D("4.00000200") <=> D("4.00000000"), std::strong_ordering::greater);
}

TEST(DecimalCompare, ExtremesDoNotOverflow) {
    // Aligning INT64_MAX at scale 0 to scale 18 needs ~123 bits.
    EXPECT_GT(Decimal(i64_max, 0), Decimal(i64_max, 18));
    EXPECT_LT(Decimal(i64_min, 0), Decimal(i64_min, 18));
    EXPECT_LT(Decimal(i64_min, 0), Decimal(i64_max, 18));
    EXPECT_GT(Decimal(1, 18), Decimal(0, 0));
    EXPECT_LT(Decimal(-1, 18), Decimal(0, 18));
    EXPECT_EQ(Decimal(1'000'000'000'000'000'000, 18), Decimal(1, 0));
}

TEST(DecimalCompare, ScalingMantissaPreservesEquality) {
    std::mt19937_64 rng(7);
    for (int i = 0; i < 10000; ++i) {
        const auto m = static_cast<std::int64_t>(rng() % 1'000'000'000'000LL) - 500'000'000'000LL;
        const int s = static_cast<int>(rng() % 10);
        const Decimal a(m, s);
        EXPECT_EQ(a, Decimal(m * 1000, s + 3));
        EXPECT_LT(a, Decimal(m * 1000 + 1, s + 3));
        EXPECT_GT(a, Decimal(m * 1000 - 1, s + 3));
    }
}

TEST(DecimalMidpoint, ExactWithScaleGrowingForOddSums) {
    EXPECT_TRUE(Is(Decimal::midpoint(D("1.00"), D("2.00")), 150, 2));
    EXPECT_TRUE(Is(Decimal::midpoint(D("1.01"), D("1.02")), 1015, 3));
    EXPECT_TRUE(Is(Decimal::midpoint(D("1"), D("2")), 15, 1));
    EXPECT_TRUE(Is(Decimal::midpoint(D("100.25"), D("100.26")), 100255, 3));
    EXPECT_TRUE(Is(Decimal::midpoint(D("1.5"), D("2")), 175, 2));
    EXPECT_TRUE(Is(Decimal::midpoint(D("-1"), D("2")), 5, 1));
    EXPECT_TRUE(Is(Decimal::midpoint(D("-1"), D("-2")), -15, 1));
    EXPECT_TRUE(Is(Decimal::midpoint(D("4.00000000"), D("4.00000200")), 400000100, 8));
    EXPECT_EQ(Decimal::midpoint(D("101.25"), D("101.26"))->to_string(), "101.255");
}

TEST(DecimalMidpoint, ExtremesAndOverflow) {
    EXPECT_TRUE(Is(Decimal::midpoint(Decimal(i64_max, 0), Decimal(i64_max, 0)), i64_max, 0));
    EXPECT_TRUE(Is(Decimal::midpoint(Decimal(i64_min, 0), Decimal(i64_min, 0)), i64_min, 0));
    EXPECT_TRUE(Is(Decimal::midpoint(Decimal(i64_max, 0), Decimal(i64_min, 0)), -5, 1));
    // MAX - 0.5 needs mantissa 10*MAX - 5.
    EXPECT_FALSE(Decimal::midpoint(Decimal(i64_max, 0), Decimal(i64_max - 1, 0)));
    // An odd sum at scale 18 would need scale 19.
    EXPECT_FALSE(Decimal::midpoint(Decimal(1, 18), Decimal(2, 18)));
    EXPECT_TRUE(Is(Decimal::midpoint(Decimal(1, 18), Decimal(3, 18)), 2, 18));
    EXPECT_FALSE(Decimal::midpoint(Decimal(i64_max, 0), Decimal(1, 18)));
}

TEST(DecimalMidpoint, DropsTrailingZerosRatherThanOverflow) {
    // At the common scale 5 the mantissa would be 4.5e23; the value itself fits at scale 0.
    EXPECT_TRUE(Is(Decimal::midpoint(Decimal(9'000'000'000'000'000'000, 0), Decimal(0, 5)),
                   4'500'000'000'000'000'000, 0));
}

TEST(DecimalDifference, Exact) {
    EXPECT_TRUE(Is(Decimal::difference(D("101.26"), D("101.25")), 1, 2));
    EXPECT_TRUE(Is(Decimal::difference(D("1"), D("0.001")), 999, 3));
    EXPECT_TRUE(Is(Decimal::difference(D("0.5"), D("1.25")), -75, 2));
    EXPECT_TRUE(Is(Decimal::difference(D("4.00000200"), D("4.00000000")), 200, 8));
    EXPECT_TRUE(Is(Decimal::difference(D("-3"), D("-3.0")), 0, 1));
    EXPECT_TRUE(Is(Decimal::difference(D("-1"), Decimal(i64_max, 0)), i64_min, 0));
}

TEST(DecimalDifference, Overflow) {
    EXPECT_FALSE(Decimal::difference(Decimal(i64_min, 0), Decimal(1, 0)));
    EXPECT_FALSE(Decimal::difference(Decimal(i64_max, 0), Decimal(-1, 0)));
    EXPECT_FALSE(Decimal::difference(Decimal(0, 0), Decimal(i64_min, 0)));
    EXPECT_FALSE(Decimal::difference(Decimal(i64_max, 0), Decimal(1, 18)));
    EXPECT_TRUE(Is(Decimal::difference(Decimal(0, 0), Decimal(i64_max, 0)), -i64_max, 0));
}

TEST(DecimalDifference, AgreesWithMidpointOnRandomInputs) {
    // (a+b)/2 - b == (a-b)/2, checked without trusting either side's scale.
    std::mt19937_64 rng(99);
    for (int i = 0; i < 10000; ++i) {
        const Decimal a(static_cast<std::int64_t>(rng() % 2'000'000'000) - 1'000'000'000,
                        static_cast<int>(rng() % 9));
        const Decimal b(static_cast<std::int64_t>(rng() % 2'000'000'000) - 1'000'000'000,
                        static_cast<int>(rng() % 9));
        const auto mid = Decimal::midpoint(a, b);
        const auto diff = Decimal::difference(a, b);
        ASSERT_TRUE(mid && diff);
        const auto lhs = Decimal::difference(*mid, b);
        const auto rhs = Decimal::midpoint(*diff, Decimal(0, 0));
        ASSERT_TRUE(lhs && rhs);
        EXPECT_EQ(*lhs, *rhs) << a.to_string() << ' ' << b.to_string();
        EXPECT_LE(std::min(a, b), *mid);
        EXPECT_GE(std::max(a, b), *mid);
    }
}

TEST(DecimalToDouble, ForMetrics) {
    EXPECT_DOUBLE_EQ(D("0.00000200").to_double(), 2e-6);
    EXPECT_DOUBLE_EQ(D("-12.5").to_double(), -12.5);
    EXPECT_DOUBLE_EQ(D("66256.8").to_double(), 66256.8);
    EXPECT_DOUBLE_EQ(Decimal(0, 7).to_double(), 0.0);
}

TEST(DecimalMisc, IsZero) {
    EXPECT_TRUE(D("0.000").is_zero());
    EXPECT_FALSE(D("0.001").is_zero());
}
