// Intermediate data, all of it: the run file format with its writer and reader
// (runner/run_file.h), the k-way merge of runs (runner/merge_reader.h) and the store map and
// reduce attempts write and read partitions through (runner/shuffle_store.h). For callers that use
// all three (tests); code that needs one includes that one. Threads: see each header.
#pragma once

#include "runner/merge_reader.h"
#include "runner/run_file.h"
#include "runner/shuffle_store.h"
