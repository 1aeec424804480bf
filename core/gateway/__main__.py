from core.gateway.server import main

main()
