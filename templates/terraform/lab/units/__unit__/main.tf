# Local lab hosts (network namespaces on this machine, reachable over SSH), created and
# removed by `factoryctl lab up/down` from local-exec: built-in resources only, nothing to
# download. `lab up` is idempotent, so a re-run after a failure only starts what is missing.
resource "terraform_data" "host" {
  for_each = var.hosts

  # Changed facts re-create the host: down first, then up with the new address or GPUs.
  triggers_replace = each.value
  input = {
    address = each.value.address
    bridge  = var.lab.bridge
    gpus    = each.value.gpus
    lab_dir = var.lab_dir
    name    = each.key
    subnet  = var.lab.subnet
  }

  # No shell: the interpreter list is the argv and `command` its last word.
  provisioner "local-exec" {
    interpreter = [
      "factoryctl", "lab", "up", "--quiet", "--dir", self.input.lab_dir,
      "--subnet", self.input.subnet, "--bridge", self.input.bridge, "--host",
    ]
    command = "${self.input.name}=${self.input.address},gpus=${self.input.gpus}"
  }

  provisioner "local-exec" {
    when = destroy
    interpreter = [
      "factoryctl", "lab", "down", "--dir", self.input.lab_dir, "--bridge", self.input.bridge, "--host",
    ]
    command = self.input.name
  }
}
