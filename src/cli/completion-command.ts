// `lamplighter completion bash|zsh|fish`: a completion script made from the commands and flags
// the program registers, so it never falls behind them.
import type { Command } from 'commander';
import type { CommandIo } from './command-io.js';

interface CommandWords {
  name: string;
  flags: string[];
  description: string;
}

function commandWords(program: Command): CommandWords[] {
  return program.commands
    .filter((c) => c.name() !== 'completion')
    .map((c) => ({
      name: c.name(),
      description: c.description().split('\n')[0] ?? '',
      flags: c.options.flatMap((o) => [o.long, o.short]).filter((f): f is string => typeof f === 'string'),
    }))
    .concat([{ name: 'completion', description: 'print a shell completion script', flags: [] }]);
}

function bash(words: CommandWords[]): string {
  const cases = words.map((w) => `    ${w.name}) flags="${w.flags.join(' ')}" ;;`).join('\n');
  return `# lamplighter completion for bash: eval "$(lamplighter completion bash)"
_lamplighter() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${words.map((w) => w.name).join(' ')}" -- "$cur"))
    return
  fi
  local flags=""
  case "\${COMP_WORDS[1]}" in
${cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _lamplighter lamplighter
`;
}

const zshQuote = (s: string): string => s.replace(/'/g, "'\\''").replace(/:/g, '\\:');

function zsh(words: CommandWords[]): string {
  const commands = words.map((w) => `    '${w.name}:${zshQuote(w.description)}'`).join('\n');
  const cases = words.map((w) => `      ${w.name}) _arguments '*:file:_files' ${w.flags.map((f) => `'${f}'`).join(' ')} ;;`).join('\n');
  return `#compdef lamplighter
# lamplighter completion for zsh: lamplighter completion zsh > "\${fpath[1]}/_lamplighter"
_lamplighter() {
  local -a commands
  commands=(
${commands}
  )
  if (( CURRENT == 2 )); then
    _describe 'command' commands
    return
  fi
  case "$words[2]" in
${cases}
  esac
}
_lamplighter "$@"
`;
}

function fish(words: CommandWords[]): string {
  const lines = ['# lamplighter completion for fish: lamplighter completion fish | source', 'complete -c lamplighter -f'];
  for (const w of words) {
    lines.push(`complete -c lamplighter -n '__fish_use_subcommand' -a '${w.name}' -d '${w.description.replace(/'/g, "\\'")}'`);
    for (const flag of w.flags) {
      const option = flag.startsWith('--') ? `-l '${flag.slice(2)}'` : `-s '${flag.slice(1)}'`;
      lines.push(`complete -c lamplighter -n '__fish_seen_subcommand_from ${w.name}' ${option}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

const SHELLS = { bash, zsh, fish } as const;

/** Registers `completion SHELL` on `program`; register it last, so it sees every command. */
export function registerCompletionCommand(program: Command, io: CommandIo): void {
  program
    .command('completion')
    .argument('<shell>', 'bash, zsh or fish')
    .description('print a shell completion script (bash: eval "$(lamplighter completion bash)")')
    .action((shell: string) => {
      const make = SHELLS[shell as keyof typeof SHELLS];
      if (!make) throw new Error(`Cannot make completions for '${shell}': choose bash, zsh or fish`);
      io.out(make(commandWords(program)).trimEnd());
    });
}
