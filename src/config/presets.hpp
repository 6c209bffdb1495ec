// Private to the config module: the compiled-in presets and their application to a document.
#pragma once

#include "detail.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace mdagg::config_detail {

// One config/presets/NAME.yaml, embedded at build time (cmake/embed_presets.cmake).
struct EmbeddedPreset {
    std::string_view name;  // NAME
    std::string_view file;  // "config/presets/NAME.yaml", for messages
    std::string_view text;
};
const std::vector<EmbeddedPreset>& embedded_presets();  // sorted by name

// The keys a preset filled in, so an error inside one points at the source's `preset:` (the
// user's file) and names the preset's file and line, instead of a line of the user's file
// that says something else.
class PresetOrigins {
public:
    struct Filled {
        std::string path;         // "sources[0].fields", "hosts[1]" (a whole entry), "hosts[0].usage"
        std::string owner;        // "sources[0] (binance)", for --print's header
        const EmbeddedPreset* preset = nullptr;
        YAML::Mark preset_key;    // the source's `preset:` value, in the user's file
        YAML::Mark filled_from;   // the key's block in the preset's file
        bool whole_entry = false;
    };
    void add(Filled filled) { filled_.push_back(std::move(filled)); }
    const std::vector<Filled>& filled() const noexcept { return filled_; }
    // When `e` is about a filled key, throws it again at the `preset:` key, naming the preset.
    void rethrow_if_filled(const LocatedConfigError& e) const;
    std::string_view file;

private:
    std::vector<Filled> filled_;
};

// Fills each source that names a `preset:` with the preset's source keys it does not set
// itself, and its host's entry in `hosts:` with the preset's host limits (keys the entry sets
// win; no entry: one is added for the url's host). Malformed shapes are left for the schema to
// report; an unknown preset fails at its name.
PresetOrigins apply_presets(std::string_view file, YAML::Node& document);

}  // namespace mdagg::config_detail
