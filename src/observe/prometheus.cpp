#include <mdagg/observe.hpp>

#include <charconv>
#include <cmath>

namespace mdagg {

namespace {

// HELP text escapes backslash and newline; label values also the double quote.
void append_escaped(std::string& out, std::string_view text, bool quote) {
    for (char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (quote && c == '"') {
            out += "\\\"";
        } else {
            out += c;
        }
    }
}

void append_number(std::string& out, double value) {
    if (std::isnan(value)) {
        out += "NaN";
        return;
    }
    if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
        return;
    }
    char buffer[32];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);  // shortest round-trip
    out.append(buffer, ec == std::errc{} ? end : buffer);
}

// Powers of two from 2^7 us (128 us) to 2^25 us (33.5 s); each is an upper bound of some
// LatencyHistogram bucket (8 << k us).
constexpr int first_le_exponent = 7;
constexpr int last_le_exponent = 25;

}  // namespace

void PrometheusWriter::family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    append_escaped(out_, help, false);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
}

void PrometheusWriter::series(std::string_view name, std::initializer_list<Label> labels,
                              std::optional<Label> extra) {
    out_ += name;
    if (labels.size() == 0 && !extra) {
        out_ += ' ';
        return;
    }
    out_ += '{';
    bool first = true;
    auto add = [&](const Label& l) {
        if (!first) out_ += ',';
        first = false;
        out_ += l.name;
        out_ += "=\"";
        append_escaped(out_, l.value, true);
        out_ += '"';
    };
    for (const Label& l : labels) add(l);
    if (extra) add(*extra);
    out_ += "} ";
}

void PrometheusWriter::sample(std::string_view name, std::initializer_list<Label> labels, double value) {
    series(name, labels, std::nullopt);
    append_number(out_, value);
    out_ += '\n';
}

void PrometheusWriter::histogram(std::string_view name, std::initializer_list<Label> labels,
                                 const LatencyHistogram::Snapshot& snapshot) {
    const std::string bucket = std::string(name) + "_bucket";
    std::uint64_t cumulative = 0;
    std::size_t next = 0;  // first LatencyHistogram bucket not yet counted
    for (int e = first_le_exponent; e <= last_le_exponent; ++e) {
        const auto bound = std::chrono::microseconds(std::int64_t{1} << e);
        // Buckets hold values below their upper bound: those whose bound is <= le are all <= le.
        while (next < LatencyHistogram::bucket_count && LatencyHistogram::upper_bound(next) <= bound)
            cumulative += snapshot.counts[next++];
        std::string le;
        append_number(le, std::chrono::duration<double>(bound).count());
        series(bucket, labels, Label{"le", le});
        append_number(out_, static_cast<double>(cumulative));
        out_ += '\n';
    }
    series(bucket, labels, Label{"le", "+Inf"});
    append_number(out_, static_cast<double>(snapshot.total));
    out_ += '\n';
    series(std::string(name) + "_sum", labels, std::nullopt);
    append_number(out_, static_cast<double>(snapshot.sum_ns) / 1e9);
    out_ += '\n';
    series(std::string(name) + "_count", labels, std::nullopt);
    append_number(out_, static_cast<double>(snapshot.total));
    out_ += '\n';
}

}  // namespace mdagg
