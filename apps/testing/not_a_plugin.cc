// Test library: a valid shared library without zmr_plugin_info.
extern "C" __attribute__((visibility("default"))) int zmr_test_not_a_plugin() { return 42; }
