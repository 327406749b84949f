// The combining buffer: map output for an app with an in-process combiner (Combine cheap to call
// per key). A hash table from key to the key's values: equal keys share one entry, and a key's
// values are combined as they arrive (whenever they fill the entry's 64-byte slab), so memory
// grows with distinct keys, not records. No allocation per record: entries hold short keys and
// the first slab inline; long keys and further slabs live in arena chunks reused after every
// spill (runner/arena.h). A spill writes each key's values through the combiner once more, a lone
// value as it is.
//
// Made by MapOutputBuffer::Create (runner/map_output_buffer.h), the only caller; single-threaded
// like every MapOutputBuffer.
#pragma once

#include <memory>

#include "common/app.h"
#include "runner/map_output_buffer.h"

namespace zmr {

// A buffer that combines values as they arrive. Requires options.combine and
// options.combine_eagerly: every Combine it makes is followed by FlushCombine. app must outlive
// the buffer. Never fails (files are only created when it spills).
std::unique_ptr<MapOutputBuffer> NewCombiningBuffer(App* app, MapOutputOptions options);

}  // namespace zmr
