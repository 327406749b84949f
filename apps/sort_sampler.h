// Split points for the sort app's range partitioner (apps/sort_keys.h), from a sample of the input
// taken at submission, as Hadoop TeraSort's InputSampler does: read the keys of the lines at a
// number of places spread evenly over the input, sort them and take R-1 quantiles. The client
// (`zmr submit`) runs it through PlanAppParams (apps/registry.h) before the job is sent, so the
// coordinator's poll loop never reads input data (ARCHITECTURE.md, "Sorting"). Pure functions over
// the local filesystem; callable from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/splits.h"

namespace zmr {

struct SampleOptions {
  int regions = 100;                    // places sampled: the input cut into this many ranges
  int keys_per_region = 100;            // most lines read from the start of each range
  std::size_t region_read_bytes = 64 << 10;  // most bytes read at each place
};

// Reads the keys (the first key_bytes bytes of a line; apps/sort_keys.h) of lines from the
// concatenation of `files`, cut into options.regions byte ranges of near-equal size (lines belong
// to the range holding their first byte, as for splits; the range's file only). From the start of
// each range: lines until the range ends, keys_per_region keys were read or region_read_bytes
// were, so an input smaller than regions x region_read_bytes (with short lines) is read whole.
// Appends the keys to *keys in input order. Returns false with a one-line *error when a file
// cannot be read.
bool SampleKeys(const std::vector<InputFile>& files, std::size_t key_bytes,
                const SampleOptions& options, std::vector<std::string>* keys, std::string* error);

// At most partitions-1 split points, strictly increasing, from the sample: sorted, the i-th point is
// the sample at rank floor(i * n / partitions), moved up to the next larger sample when it is not
// above the previous point (so heavy duplicates give fewer points, never equal ones). Empty for an
// empty sample or partitions <= 1.
std::vector<std::string> ChooseSplitPoints(std::vector<std::string> samples, int64_t partitions);

}  // namespace zmr
