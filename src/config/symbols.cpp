// Canonical symbols across venues: a source's `symbol_map:` (a CSV of "name,venue" lines) and
// how it combines with `symbols:`. One instrument has one canonical name in every source, so
// the aggregator consolidates it; each source asks its venue for it by the venue's spelling.
#include "detail.hpp"

#include <cerrno>
#include <cstdio>
#include <memory>
#include <system_error>
#include <unordered_map>

namespace mdagg::config_detail {

namespace {

// A map as large as the largest symbol list, with room for long names.
constexpr std::size_t max_map_entries = 1'000'000;
constexpr std::size_t max_map_bytes = 64 * 1024 * 1024;

struct MapEntry {
    std::string name, venue;
    std::size_t line = 0;
};

std::string read_map_file(const Value& key, const std::string& path) {
    const auto fail = [&](const std::string& why) { key.fail(std::string("cannot read \"") + path + "\": " + why); };
    const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!file) fail(std::generic_category().message(errno));
    std::string text;
    char buffer[64 * 1024];
    while (const std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get())) {
        text.append(buffer, n);
        if (text.size() > max_map_bytes) fail("larger than 64 MiB");
    }
    if (std::ferror(file.get())) fail(std::generic_category().message(errno));  // a directory: EISDIR
    return text;
}

std::string_view trim(std::string_view s, std::size_t& offset) {
    offset = 0;
    while (offset < s.size() && (s[offset] == ' ' || s[offset] == '\t')) ++offset;
    s.remove_prefix(offset);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// "name,venue" per line; blank lines and '#' comments skipped, as is a first line
// "name,venue" (a header). Errors point into the CSV: "map.csv:3:9: sources[0].symbol_map: ...".
std::vector<MapEntry> parse_map(const Value& key, const std::string& path, std::string_view text) {
    const auto fail_at = [&](std::size_t line, std::size_t column, const std::string& message) {
        throw ConfigError(path + ':' + std::to_string(line) + ':' + std::to_string(column) + ": " + key.path() +
                          ": " + message);
    };
    std::vector<MapEntry> entries;
    std::unordered_map<std::string_view, std::size_t> line_of_name, line_of_venue;
    bool first = true;
    for (std::size_t line = 1, start = 0; start < text.size(); ++line) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view row = text.substr(start, end - start);
        start = end + 1;
        if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
        std::size_t lead = 0;
        const std::string_view content = trim(row, lead);
        if (content.empty() || content.front() == '#') continue;
        const bool header = first && content == "name,venue";
        first = false;
        if (header) continue;
        const std::size_t comma = row.find(',');
        if (comma == std::string_view::npos)
            fail_at(line, lead + 1, "expected \"name,venue\", found no comma");
        if (row.find(',', comma + 1) != std::string_view::npos)
            fail_at(line, row.find(',', comma + 1) + 1, "expected \"name,venue\", found a second comma");
        std::size_t name_lead = 0, venue_lead = 0;
        const std::string_view name = trim(row.substr(0, comma), name_lead);
        const std::string_view venue = trim(row.substr(comma + 1), venue_lead);
        const std::size_t name_col = name_lead + 1, venue_col = comma + 2 + venue_lead;
        if (name.empty()) fail_at(line, name_col, "empty name; expected \"name,venue\"");
        if (venue.empty()) fail_at(line, venue_col, "empty venue; expected \"name,venue\"");
        if (auto err = symbol_error(name)) fail_at(line, name_col, std::string("name: ") + *err);
        if (auto err = symbol_error(venue)) fail_at(line, venue_col, std::string("venue: ") + *err);
        if (entries.size() == max_map_entries)
            fail_at(line, 1, std::string("more than ") + std::to_string(max_map_entries) + " entries");
        // Views into `text`, which outlives the maps.
        if (auto [it, fresh] = line_of_name.emplace(name, line); !fresh)
            fail_at(line, name_col, std::string("duplicate name \"") + std::string(name) + "\", already on line " +
                                        std::to_string(it->second));
        if (auto [it, fresh] = line_of_venue.emplace(venue, line); !fresh)
            fail_at(line, venue_col, std::string("duplicate venue \"") + std::string(venue) + "\", already on line " +
                                         std::to_string(it->second));
        entries.push_back({std::string(name), std::string(venue), line});
    }
    return entries;
}

}  // namespace

void finish_symbols(const Value& source, const std::optional<Value>& symbols,
                    const std::optional<Value>& symbol_map, SourceConfig& out) {
    if (!symbols && !symbol_map) source.fail_child("symbols", "required key is missing (or give symbol_map: PATH)");
    // Where each venue name came from in the map, for a clash with a listed symbol's.
    std::unordered_map<std::string, std::size_t> map_line;
    if (symbol_map) {
        const std::string text = read_map_file(*symbol_map, out.symbol_map);
        std::vector<MapEntry> entries = parse_map(*symbol_map, out.symbol_map, text);
        if (!symbols) {  // the map is the list, in file order
            if (entries.empty()) symbol_map->fail(std::string("\"") + out.symbol_map + "\" holds no symbols");
            out.symbols.reserve(entries.size());
            for (MapEntry& e : entries) {
                out.symbols.push_back(e.name);
                map_line.emplace(e.name, e.line);
                out.venue_symbols.emplace(std::move(e.name), std::move(e.venue));
            }
        } else {  // names the venue of each listed symbol without its own `venue:`
            std::unordered_map<std::string_view, const MapEntry*> by_name;
            for (const MapEntry& e : entries) by_name.emplace(e.name, &e);
            for (const std::string& name : out.symbols) {
                const auto it = by_name.find(name);
                if (it == by_name.end() || out.venue_symbols.contains(name)) continue;
                out.venue_symbols.emplace(name, it->second->venue);
                map_line.emplace(name, it->second->line);
            }
            // A venue name the map gave one symbol may be another listed symbol's own.
            std::unordered_map<std::string_view, std::string_view> owner;
            for (const std::string& name : out.symbols) {
                const std::string& venue = out.venue_symbol(name);
                const auto [it, fresh] = owner.emplace(venue, name);
                if (fresh) continue;
                const std::string_view mapped = map_line.contains(name) ? std::string_view(name) : it->second;
                symbol_map->fail(std::string("venue name \"") + venue + "\" (line " + std::to_string(map_line.at(std::string(mapped))) +
                                 " of \"" + out.symbol_map + "\") would be polled for both \"" +
                                 std::string(it->second) + "\" and \"" + name + "\"");
            }
        }
    }
    std::erase_if(out.venue_symbols, [](const auto& entry) { return entry.first == entry.second; });
}

}  // namespace mdagg::config_detail
