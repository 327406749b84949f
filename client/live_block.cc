#include "client/live_block.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <ostream>
#include <vector>

namespace zmr::client {

void LiveBlock::Draw(ProgressTracker& tracker) {
  std::string frame = MoveOver();
  for (const std::string& line : tracker.TakeFailureLines()) frame += line + "\n";
  const std::vector<std::string> lines = tracker.RenderLive(TerminalWidth());
  for (const std::string& line : lines) frame += line + "\n";
  rows_ = static_cast<int>(lines.size());
  out_ << frame << std::flush;
}

void LiveBlock::Erase() {
  if (rows_ == 0) return;
  out_ << MoveOver() << std::flush;
}

std::string LiveBlock::MoveOver() {
  if (rows_ == 0) return "";
  std::string codes = "\r\033[" + std::to_string(rows_) + "A\033[J";
  rows_ = 0;
  return codes;
}

int LiveBlock::TerminalWidth() {
  struct winsize size {};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return kDefaultTerminalWidth;
}

}  // namespace zmr::client
