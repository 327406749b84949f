// The summing buffer: map output for an app whose combiner is declared an int64 sum
// (App::KnownCombiner() == CombinerKind::kInt64Sum, as the built-in wordcount's). A hash table
// from key to a running sum and count, in 32-byte slots that hold keys of up to 16 bytes, with
// Emits queued a few deep so their slots are prefetched. Its spills hold exactly the records the
// combining buffer's would (a lone value as it came, else the decimal sum), without calling the
// combiner.
//
// Made by MapOutputBuffer::Create (runner/map_output_buffer.h), the only caller; single-threaded
// like every MapOutputBuffer.
#pragma once

#include <memory>

#include "common/app.h"
#include "runner/map_output_buffer.h"

namespace zmr {

// A buffer that sums each key's values. Requires options.combine, options.combine_eagerly and
// app->KnownCombiner() == CombinerKind::kInt64Sum. app must outlive the buffer. Never fails
// (files are only created when it spills).
std::unique_ptr<MapOutputBuffer> NewSummingBuffer(App* app, MapOutputOptions options);

}  // namespace zmr
