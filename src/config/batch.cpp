// A source's `batch:` block: one request for many symbols, the answer's entries picked by
// JSON Pointer (docs/configuration.md, Batch endpoints).
#include "detail.hpp"

#include <algorithm>
#include <limits>

namespace mdagg {

namespace {

using namespace config_detail;

constexpr std::string_view list_placeholder = "{symbols}";
constexpr std::string_view key_symbol = "#key";
constexpr std::string_view formats[] = {"json"};
// Far above any venue's list limit (Binance takes about 100 per request); the URL's length
// is what really bounds it.
constexpr std::uint64_t max_batch_size = 10'000;

bool is_unreserved(char c) noexcept {
    return is_ascii_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

void append_percent_encoded(std::string& out, char c) {
    static constexpr char digits[] = "0123456789ABCDEF";
    const auto u = static_cast<unsigned char>(c);
    out += '%';
    out += digits[u >> 4];
    out += digits[u & 0xf];
}

// Symbols pass the check of symbol_error(), so only the few characters outside the
// unreserved set (and ':' which is legal in a query) need encoding.
void append_name(std::string& out, std::string_view name) {
    for (char c : name) {
        if (is_unreserved(c) || c == ':')
            out += c;
        else
            append_percent_encoded(out, c);
    }
}

constexpr Key<BatchDraft> batch_keys[] = {
    {"items",
     [](const Value& v, BatchDraft& d) {
         d.cfg.items = read_string(v);  // "" is the whole body: Binance answers a bare array
         if (auto err = json_pointer_error(d.cfg.items)) v.fail(*err);
     },
     true},
    {"symbol",
     [](const Value& v, BatchDraft& d) {
         d.cfg.symbol = read_nonempty_string(v);
         if (d.cfg.symbol == key_symbol) return;
         if (auto err = json_pointer_error(d.cfg.symbol))
             v.fail(*err + " (or \"#key\": the entry's key in an object)");
     },
     true},
    {"size",
     [](const Value& v, BatchDraft& d) {
         if (v.is_plain() && v.node().Scalar().starts_with('-'))
             v.fail("must not be negative: symbols per request, or 0 for one request with all");
         d.cfg.size = static_cast<std::size_t>(read_uint(v, 0, max_batch_size));
     }},
    {"join",
     [](const Value& v, BatchDraft& d) {
         d.cfg.join = read_nonempty_string(v);
         // Spelled into the query as it is: it must already be valid there.
         constexpr std::string_view allowed = "!$'()*+,;:@/|";
         for (char c : d.cfg.join)
             if (!is_unreserved(c) && allowed.find(c) == std::string_view::npos)
                 v.fail("invalid character " + describe_char(c) + " in join; allowed: A-Z a-z 0-9 - . _ ~ " +
                        std::string(allowed));
         if (d.cfg.format == BatchConfig::Format::json) v.fail("set either join or format: json, not both");
         d.asked_by_list = true;
     }},
    {"format",
     [](const Value& v, BatchDraft& d) {
         read_choice(v, formats);
         if (d.asked_by_list) v.fail("set either join or format: json, not both");
         d.cfg.format = BatchConfig::Format::json;
         d.asked_by_list = true;
     }},
};

}  // namespace

namespace config_detail {

BatchDraft read_batch(const Value& v) {
    if (!v.is_map()) v.fail("expected a mapping {items, symbol, size, join | format}, got " + v.describe());
    BatchDraft d;
    read_map(v, batch_keys, d);
    return d;
}

void check_batch_url(const BatchDraft& draft, const Value& url, SourceConfig& source) {
    BatchConfig cfg = draft.cfg;
    const std::string& target = source.url.target_template;
    if (target.find("{symbol}") != std::string::npos)
        url.fail("a batch source's url spells \"{symbols}\" (the batch's names), not \"{symbol}\"");
    cfg.symbols_in_url = target.find(list_placeholder) != std::string::npos;
    if (!cfg.symbols_in_url && cfg.size > 0)
        url.fail("must contain \"{symbols}\" because batch.size is " + std::to_string(cfg.size) +
                 " (each request names its symbols)");
    if (!cfg.symbols_in_url && draft.asked_by_list)
        url.fail(std::string("must contain \"{symbols}\" because batch.") +
                 (cfg.format == BatchConfig::Format::json ? "format" : "join") +
                 " says how to spell the symbols into it");
    source.batch = std::move(cfg);
}

std::vector<std::string> batch_key_names() {
    std::vector<std::string> out;
    for (const auto& k : batch_keys) out.emplace_back(k.name);
    return out;
}

}  // namespace config_detail

std::size_t SourceConfig::request_count() const noexcept {
    if (!batch) return symbols.size();
    if (symbols.empty()) return 0;
    if (batch->size == 0) return 1;
    return (symbols.size() + batch->size - 1) / batch->size;
}

std::string Url::target_for_symbols(const std::vector<std::string>& venue_names, const BatchConfig& batch) const {
    std::string list;
    if (batch.format == BatchConfig::Format::json) {
        // ["A","B"] with '[', '"' and ']' percent-encoded (Binance's symbols= parameter); the
        // commas stay, as in Binance's own examples.
        list += "%5B";
        for (std::size_t i = 0; i < venue_names.size(); ++i) {
            if (i) list += ',';
            list += "%22";
            append_name(list, venue_names[i]);
            list += "%22";
        }
        list += "%5D";
    } else {
        for (std::size_t i = 0; i < venue_names.size(); ++i) {
            if (i) list += batch.join;
            append_name(list, venue_names[i]);
        }
    }
    const std::string& target = secret_target.empty() ? target_template : secret_target.reveal();
    std::string out;
    out.reserve(target.size() + list.size());
    std::size_t from = 0;
    for (std::size_t at; (at = target.find(list_placeholder, from)) != std::string::npos;
         from = at + list_placeholder.size()) {
        out.append(target, from, at - from);
        out += list;
    }
    out.append(target, from);
    return out;
}

}  // namespace mdagg
