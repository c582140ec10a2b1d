# The Puppet vardir of the agent that runs: a catalog compiled by a Puppet server (baton up
# --puppetserver) puts the motd in the agent's own Puppet dirs, as `puppet apply` does.
Facter.add(:baton_puppet_vardir) do
  setcode do
    Puppet[:vardir] if defined?(Puppet) && Puppet.respond_to?(:[])
  end
end
