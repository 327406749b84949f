// `zmr`: the command-line client. All behaviour lives in zmr_client_lib (client/client.h) so tests
// can drive it; this file only hands over argv.
#include "client/client.h"

int main(int argc, char** argv) { return zmr::client::Main(argc, argv); }
