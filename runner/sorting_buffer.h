// The sorting buffer: map output for an app without a combiner, or with one that is an external
// command (costly per call). Records are appended to one buffer of the budget's size (mmap'd,
// huge pages when large; runner/arena.h), data growing up from the start and a fixed-size index
// growing down from the end; when they meet the index is sorted by (partition, key, arrival) and
// written, the records a few entries ahead prefetched. A combiner, if any, gets every key group
// of the batch (it may hold its output back until FlushCombine, so nothing is written around it).
//
// Made by MapOutputBuffer::Create (runner/map_output_buffer.h), the only caller; single-threaded
// like every MapOutputBuffer.
#pragma once

#include <memory>

#include "common/app.h"
#include "runner/map_output_buffer.h"

namespace zmr {

// A buffer that sorts records when full. options.combine may be set, options.combine_eagerly is
// ignored here. app must outlive the buffer. Never fails (files are only created when it spills;
// the buffer's memory is only touched as records arrive).
std::unique_ptr<MapOutputBuffer> NewSortingBuffer(App* app, MapOutputOptions options);

}  // namespace zmr
