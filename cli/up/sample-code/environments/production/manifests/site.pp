# What `baton job run --environment production` applies on every agent of `baton up`: each agent
# runs `puppet apply` on this directory with its own Puppet dirs (var/agents/<name>/puppet), so
# nothing outside them changes; with `baton up --puppetserver` the Puppet server compiles it and
# the agents' `puppet agent` applies it, in the same dirs.
node default {
  include sample::motd
}
