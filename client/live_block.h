// The in-place progress display of `zmr wait JOB` and `zmr submit --wait` on a terminal: draws a
// ProgressTracker's block (client/progress.h) on a stream and redraws it over itself, with each new
// failure line above it, where it stays. It knows how many rows it has on screen, so that an
// interrupt can clear what the terminal echoed below them. Owned by the Session
// (client/session.h), drawn by client/cmd_wait.cc. One thread.
#pragma once

#include <iosfwd>
#include <string>

#include "client/progress.h"

namespace zmr::client {

class LiveBlock {
 public:
  // Draws on `out` (stdout, a terminal), which must outlive this.
  explicit LiveBlock(std::ostream& out) : out_(out) {}

  // Replaces the block on screen (if any) by the tracker's new failure lines, which stay, and its
  // current block, each line fitting the width TIOCGWINSZ reports for stdout. The frame is built
  // first and handed to the stream in one piece. Requires tracker.has_snapshot().
  void Draw(ProgressTracker& tracker);

  // Clears the block from the screen (the cursor ends where it began); nothing when none is shown.
  void Erase();

  // Lines of the block now on screen; 0 when none is shown.
  int rows() const { return rows_; }

 private:
  // The control codes that move the cursor to the block's first line and clear from there to
  // the end of the screen; "" when no block is shown. Every block line fits the terminal's width
  // (ProgressTracker::RenderLive), so it took exactly one row. Afterwards rows() is 0.
  std::string MoveOver();

  // The width of the terminal on stdout, kDefaultTerminalWidth when it does not say.
  static int TerminalWidth();

  std::ostream& out_;
  int rows_ = 0;  // lines of the block now on screen
};

}  // namespace zmr::client
