# Bash completion for the zmr client. Enable it in a shell (or from ~/.bashrc) with:
#
#   source scripts/zmr-completion.bash
#
# Completes subcommands, each subcommand's flags (client/client.cc, kFlags), the values of --app,
# --log-level and --reducer, files and directories for path flags, and job ids for the commands
# that take one (from `zmr jobs --all --json`, asked with a short timeout; nothing when it fails).

_zmr_subcommands="submit status jobs tasks workers watch wait cancel"
_zmr_global_flags="--coordinator --timeout-ms --log-level --help --version"
_zmr_submit_flags="--input --output --app --param --maps --reduces --name --wait --plugin --mapper
  --combiner --reducer --file --cmdenv --max-attempts --priority --no-speculation --json
  --no-progress"

# The job ids the coordinator knows, one per line; quiet and empty on any error.
_zmr_job_ids() {
  local zmr=$1
  shift
  "$zmr" "$@" --timeout-ms 1000 jobs --all --json 2>/dev/null |
    grep -o '"job_id": *"[^"]*"' 2>/dev/null | sed 's/.*"\([^"]*\)"$/\1/' 2>/dev/null
}

_zmr() {
  local cur prev words cword
  COMPREPLY=()
  # Endpoints hold ':' (a word break for bash): bash-completion, when loaded, keeps
  # tcp://HOST:PORT one word.
  if declare -F _get_comp_words_by_ref >/dev/null 2>&1; then
    _get_comp_words_by_ref -n =: cur prev words cword
  else
    # Without it, glue "tcp" ":" "//HOST" ":" "PORT" (and "--flag" "=" "value") back together.
    local j w
    words=()
    cword=0
    for ((j = 0; j < ${#COMP_WORDS[@]}; j++)); do
      w=${COMP_WORDS[j]}
      if [ "$j" -gt 0 ] && { [[ $w == [:=] ]] || [[ ${words[-1]} == *[:=] ]]; }; then
        words[-1]+=$w
      else
        words+=("$w")
      fi
      [ "$j" -eq "$COMP_CWORD" ] && cword=$((${#words[@]} - 1))
    done
    cur=${words[cword]}
    prev=${words[cword - 1]}
  fi

  # What was typed before the cursor: the subcommand, whether it has its JOB argument yet, the
  # last flag (for --input's several values) and a --coordinator to ask for job ids.
  local i word subcommand="" has_job="" last_flag="" coordinator=()
  for ((i = 1; i < cword; i++)); do
    word=${words[i]}
    case $word in
      --coordinator | --timeout-ms | --log-level | --output | --app | --param | --maps | \
        --reduces | --name | --plugin | --mapper | --combiner | --reducer | --file | --cmdenv | \
        --max-attempts | --priority)
        [ "$word" = --coordinator ] && [ $((i + 1)) -lt "$cword" ] &&
          coordinator=(--coordinator "${words[i + 1]}")
        last_flag=$word
        ((i++))
        ;;
      --coordinator=*)
        coordinator=("$word")
        last_flag=""
        ;;
      --*) last_flag=$word ;;
      *)
        if [ "$last_flag" = --input ]; then
          :  # another value of --input
        elif [ -z "$subcommand" ]; then
          subcommand=$word
        else
          has_job=1
        fi
        ;;
    esac
  done

  case $prev in
    --app)
      COMPREPLY=($(compgen -W "wordcount grep invertedindex sort" -- "$cur"))
      return 0
      ;;
    --log-level)
      COMPREPLY=($(compgen -W "trace debug info warn error critical off" -- "$cur"))
      return 0
      ;;
    --reducer)
      COMPREPLY=($(compgen -W "NONE" -- "$cur"))
      return 0
      ;;
    --output)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -d -- "$cur"))
      return 0
      ;;
    --input | --plugin | --file)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -f -- "$cur"))
      return 0
      ;;
    --coordinator | --timeout-ms | --param | --maps | --reduces | --name | --mapper | --combiner | --cmdenv | \
      --max-attempts | --priority)
      return 0  # a free-form value
      ;;
  esac

  # Further values of --input (it takes several paths).
  if [ "$last_flag" = --input ] && [ "$subcommand" = submit ] && [[ $cur != -* ]]; then
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
    return 0
  fi

  if [ -z "$subcommand" ]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "$_zmr_global_flags" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$_zmr_subcommands" -- "$cur"))
    fi
    return 0
  fi

  local flags=""
  case $subcommand in
    submit) flags=$_zmr_submit_flags ;;
    jobs) flags="--all --json" ;;
    status | tasks | workers | watch | cancel) flags="--json" ;;
    wait) flags="--no-progress" ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags $_zmr_global_flags" -- "$cur"))
    return 0
  fi
  case $subcommand in
    status | tasks | watch | wait | cancel)
      if [ -z "$has_job" ]; then
        COMPREPLY=($(compgen -W "$(_zmr_job_ids "${words[0]}" "${coordinator[@]}")" -- "$cur"))
      fi
      ;;
  esac
  return 0
}

complete -F _zmr zmr
