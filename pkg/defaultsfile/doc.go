// Package defaultsfile reads the shell-style files under /etc/default, such as
// /etc/default/pveproxy.
//
// PVE evaluates these files with bash and reads a fixed set of variables back.
// This package implements the subset of shell syntax that such a file
// reasonably contains, without running a shell:
//
//   - KEY=value, with an optional leading "export " (bare "export KEY" is a
//     no-op, as in bash for a variable the file does not set);
//   - several assignments on one line, separated by blanks or ';';
//   - double quotes, in which \" \\ \$ and \` are escapes, a backslash before a
//     newline joins the lines, and any other backslash is kept literally;
//   - single quotes, in which every character is literal;
//   - backslash escapes outside quotes;
//   - quoted values that span several lines (the value's line is the line on
//     which its assignment starts);
//   - comments starting with '#' at the beginning of a word, blank lines.
//
// Anything whose meaning depends on a running shell is rejected with an error
// that names the file and line: variable expansion ($VAR, ${VAR}), command
// substitution ($(...) and backquotes), ANSI-C and locale quoting ($'...',
// $"..."), tilde expansion, KEY+=value, commands and shell operators (| & < >
// ( )). A carriage return outside quotes (a file saved with DOS line endings)
// is an error too, because bash would keep it as part of the value.
//
// Parse reports every bad line of a file at once, joined with errors.Join; each
// one is a *SyntaxError. When a variable is assigned twice the later value wins,
// as in bash.
package defaultsfile
